"""The commands: each parses its options, calls one core function, prints."""
