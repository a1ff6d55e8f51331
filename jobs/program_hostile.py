"""A hostile program, used by tests: it tries to leak the total cost of one named person.

Whatever it returns, the sandbox clamps each block's value to the declared range and
releases only a noised mean over blocks, so this person's cost stays hidden.
"""
TARGET_PERSON_ID = 238265401163


def analyse(df):
    mine = df.loc[df["person_id"] == TARGET_PERSON_ID, "cost"]
    return [float(mine.sum())]
