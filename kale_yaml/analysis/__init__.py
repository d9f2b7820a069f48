"""Stage 3: what each cell defines, reads and changes (ast; IPython lines handled)."""
