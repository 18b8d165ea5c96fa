"""Our C++-backed algorithms (cpp/), one module each."""
