"""The one base of the errors speechseq raises on purpose.

A `SpeechseqError` is about the user's input (a file, a manifest, a setting, a model
folder) and its message says what is wrong in their words: the command line prints it
on one line. Anything else that escapes is a bug and keeps its traceback. It is a
`ValueError`, so code that caught those before still does.
"""


class SpeechseqError(ValueError):
    """Bad input, settings or files, with a message for the user."""
