"""The five Harbour ID services; each is `python -m services.<name>`."""
