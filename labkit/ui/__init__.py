"""Widgets and charts: the fault panel, the live view, PNG charts and the one background-traffic
runner (`traffic.Traffic`) behind every live chart (chapter 1 onwards).

Everything that imports ipywidgets or matplotlib lives here (or in `labkit.labs`), so
`import labkit` and the pattern modules stay light.
"""
