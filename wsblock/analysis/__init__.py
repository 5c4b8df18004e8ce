"""Reading records: the tidy table and the cell of each row, cells over their repeats,
survival boundaries, changes between runs, the recommendation, findings checks, asv results."""
