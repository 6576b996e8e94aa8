"""Export to TFLite, evaluation in the LiteRT interpreter, and the full-integer and parity checks."""
