"""Corpus files of chapters 06 on: each chNN_<name>.py defines WRONG, WHY, RIGHT (and may
define BLOCKING) like tests/wrong_answers.py, which merges them."""
