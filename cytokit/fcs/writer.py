def write_fcs(*args, **kwargs):
    raise NotImplementedError("FCS writing is being written")
