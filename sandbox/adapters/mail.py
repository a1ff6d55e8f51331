"""Sending mail through the configured SMTP server (Settings.smtp_url), with smtplib.

smtp://host:port plain, smtp+starttls://host:port upgraded with STARTTLS, smtps://host:port
TLS from the start; user:password@ in the URL logs in. One connection per batch."""
from __future__ import annotations

import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class SmtpMailer:
    def __init__(self, url: str, sender: str, timeout: float = 20.0):
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ValueError(f"SANDBOX_SMTP_URL: use smtp://host:port, smtp+starttls:// or smtps://, not {url!r}")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port or SCHEMES[parts.scheme]
        self.login = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        self.sender, self.timeout = sender, timeout

    def open(self) -> smtplib.SMTP:
        cls = smtplib.SMTP_SSL if self.scheme == "smtps" else smtplib.SMTP
        conn = cls(self.host, self.port, timeout=self.timeout)
        if self.scheme == "smtp+starttls":
            conn.starttls()
        if self.login:
            conn.login(*self.login)
        return conn

    def message(self, to: str, subject: str, body: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, to, subject
        msg.set_content(body)
        return msg
