"""Video corpora, procedural scenes and measurement dataset files."""
