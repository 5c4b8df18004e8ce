"""Reading records: the tidy table, findings checks, asv results."""
