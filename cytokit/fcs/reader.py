def read_fcs(*args, **kwargs):
    raise NotImplementedError("FCS reading is being written")
