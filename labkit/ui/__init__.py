"""Widgets and charts: the fault panel, the live view and PNG charts (chapter 1 onwards).

Everything that imports ipywidgets or matplotlib lives here (or in `labkit.labs`), so
`import labkit` and the pattern modules stay light.
"""
