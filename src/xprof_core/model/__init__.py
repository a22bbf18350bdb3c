"""The model: one host's profile as typed columns (:class:`XSpace`), and ``load``."""
