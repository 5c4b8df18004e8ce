"""The vocabulary shared by every layer: the record and its versions."""
