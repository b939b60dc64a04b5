// PythonSyntax
