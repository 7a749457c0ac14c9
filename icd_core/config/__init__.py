"""The product configuration: its schema, the one converter, validators, config files."""
