"""Drop-in replacements for the nanopq and pqkmeans APIs, on our C++ core."""
