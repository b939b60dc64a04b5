#ifndef TREE_SITTER_PYTHON_H
#define TREE_SITTER_PYTHON_H
// The grammar's sources (src/parser.c, src/scanner.c) are fetched by
// scripts/bootstrap (tree-sitter-python 0.23.6, hash-checked); they are not committed.
typedef struct TSLanguage TSLanguage;
const TSLanguage *tree_sitter_python(void);
#endif
