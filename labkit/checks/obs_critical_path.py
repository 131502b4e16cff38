"""(placeholder: filled in by chapter work)"""
