"""Public-data sandbox: operators analyse public data they never see (数据可用不可见)."""
