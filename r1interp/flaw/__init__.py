"""Find and fix a planted flaw: an organism trained to get one pattern wrong, and the pipeline that must find the
pattern from its failures, localise what is responsible and repair it against matched controls."""
