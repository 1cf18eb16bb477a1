"""Releases: publishing transcoders and labels to the Hugging Face Hub, pulling them back, and the
release manifest (releases.yaml) that pins what was published."""
