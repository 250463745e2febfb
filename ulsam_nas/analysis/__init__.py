"""Reading trials: objectives, the front and its verdicts, hypervolume, rank agreement. Ray-free.
"""
