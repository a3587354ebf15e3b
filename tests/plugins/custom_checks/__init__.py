"""A small package of checks of one's own, as a team would write them (used by
tests/test_custom_checks.py; the dist-info beside it registers two of them as
entry points)."""
