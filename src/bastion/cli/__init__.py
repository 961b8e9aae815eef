"""The ``bastion`` command line: thin commands that parse, call the domain, render."""
