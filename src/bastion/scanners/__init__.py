"""Model-file scanners. They read bytes and never deserialise or execute what they scan."""
