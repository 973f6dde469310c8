"""Shared checks of the model files against counted reference figures (see each test module's docstring for how
its figures were obtained)."""

TOLERANCE = 0.01  # DEVELOPERS.md: within 1 % of the reference implementation


def close(ours, ref, tol=TOLERANCE):
    if ref == 0:
        assert ours == 0, f"{ours} vs reference 0"
    else:
        assert abs(ours / ref - 1) <= tol, f"{ours} vs reference {ref} ({100 * (ours / ref - 1):+.3f} %)"


def stage(model, name):
    return next(s for s in model.stages if s.name == name)
