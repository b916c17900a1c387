"""Reference clients of the platform: the citizen app and (later) the demo relying party."""
