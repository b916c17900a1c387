"""The client registry: relying parties, agencies and kiosks, their metadata and credentials."""
