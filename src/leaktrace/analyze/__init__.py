"""Turning a capture into the report model: grouping, stack ids, module lookup, totals."""
