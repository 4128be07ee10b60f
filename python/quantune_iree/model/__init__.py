"""Frozen records: the imported model's interface, layers, targets, the plan and every stage's
results. Needs numpy only: no IREE, no native extension, so decisions and reports built on these
records can be imported and tested anywhere."""
