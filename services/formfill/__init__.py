"""The formfill service: The encrypted personal-data vault and consented release of form data."""
