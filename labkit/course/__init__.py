"""Course material that is not code to learn from: the Chinese–English glossary (packaged as
`glossary.csv`) and `show`, which prints a labkit function's source in a notebook.
"""
