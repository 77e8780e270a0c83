"""Decision curves: loading trial tables, psychometric fits, normalization, alignment, reports."""
