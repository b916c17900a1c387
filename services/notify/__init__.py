"""The notify service: Personalised notifications to citizens and agency event topics."""
