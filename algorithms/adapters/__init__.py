"""Adapters of other libraries (faiss, nanopq, pqkmeans) to the plugin contract."""
