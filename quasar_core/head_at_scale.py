"""The head on many photos: the same softmax regression as head.fit_head, in memory that does not grow with them.

Above ``SCALE_ROWS`` training rows (photo views), ``head.fit_head`` hands over to ``fit_head_at_scale``. It
minimises exactly scikit-learn's objective for LogisticRegression(C=strength, class_weight="balanced" or
None) on the square-rooted, standardised features — a multinomial softmax loss (a binomial one for two
classes, as scikit-learn fits them), L2 on the weights, the intercepts free — with scipy's L-BFGS and
scikit-learn's own stopping rules (gtol 1e-4, ftol 64 eps, 50 line-search steps, MAX_ITER iterations). Only the
loss and its gradient are computed differently: a chunk of ``CHUNK_ROWS`` rows at a time is read from the
features (an array, or a memory-mapped file), square-rooted in place (the standardisation is folded into the
weights), and its share added up.
So the memory it needs beyond the features is a chunk (CHUNK_ROWS x d floats, 32 MB) and a few (d x classes)
arrays, however many rows there are; the rooted, standardised and float64 copies scikit-learn's path makes (3 to 4
times the features' size) never exist. The result is the same Head (mean, scale, kernel, bias, the two-class
split, absent classes' -1e4 bias), the same optimum to the solver's tolerance, saved and assembled as any other.

Why L-BFGS on chunks and not SGD (``partial_fit``): the folds choose the regularisation among head.STRENGTHS, and
that choice means the same thing only if each fit reaches the same optimum as below the threshold; SGD stops
near it after a learning-rate schedule and epochs that would need choosing again. A pass over the rows is one
loss-and-gradient, as for scikit-learn itself, so the time per iteration is about the same.

The folds and the hold-out are the callers' (crossval.folds_for: above config.max_cv_photos photos, one held-out
share): unchanged.
"""

from __future__ import annotations

import numpy as np

from quasar_core.head_arrays import MAX_ITER, ROOT_EPSILON, VARIANCE_FLOOR, Head

# Training rows above which fit_head uses this module. Below it scikit-learn's own path, whose rooted, standardised
# and solver copies cost ~3-4x the rows' features (at 50,000 rows of 1,024 floats: ~0.6-0.8 GB), stays as it was.
SCALE_ROWS = 50_000
CHUNK_ROWS = 8192  # rows read, rooted and standardised at a time: 8192 x 1024 float32 = 32 MB
TOLERANCE = 1e-4  # scikit-learn's LogisticRegression(tol=1e-4), L-BFGS's gtol


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


def _rooted_chunk(features, start, stop, rows=None) -> np.ndarray:
    """Rows start..stop (of `rows`, when given) as the head sees them before standardising: square-rooted, float32."""
    x = np.array(features[start:stop] if rows is None else features[rows[start:stop]], dtype=np.float32, copy=True)
    np.maximum(x, 0, out=x)
    x += ROOT_EPSILON
    np.sqrt(x, out=x)
    return x


def standardisation(features, rows=None, *, chunk: int = CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) of the rooted features, as fit_head computes them (variance floored), in two passes."""
    n = len(features) if rows is None else len(rows)
    total = None
    for start, stop in _chunks(n, chunk):
        part = _rooted_chunk(features, start, stop, rows).sum(axis=0, dtype=np.float64)
        total = part if total is None else total + part
    mean = (total / n).astype(np.float32)
    squares = None
    for start, stop in _chunks(n, chunk):
        x = _rooted_chunk(features, start, stop, rows)
        x -= mean
        part = np.einsum("ij,ij->j", x, x, dtype=np.float64)
        squares = part if squares is None else squares + part
    variance = (squares / n).astype(np.float32)
    scale = np.sqrt(np.maximum(variance, VARIANCE_FLOOR * float(variance.mean()) + 1e-12)).astype(np.float32)
    return mean, scale


def fit_head_at_scale(features, targets, *, n_classes: int, strength: float, class_weights: bool = True,
                      rows=None, chunk: int = CHUNK_ROWS, max_iter: int = MAX_ITER) -> Head:
    """head.fit_head's Head from (n, d) pooled features (an array or np.memmap; only `rows` of them when given)
    and their class ids, by L-BFGS over chunks of rows (see the module docstring)."""
    from scipy.optimize import minimize

    rows = None if rows is None else np.asarray(rows, dtype=np.int64)
    y = np.asarray(targets, dtype=np.int64)
    n = len(features) if rows is None else len(rows)
    if len(y) != n:
        raise ValueError(f"targets must give each of the {n} rows a class, got {len(y)}.")
    present, code = np.unique(y, return_inverse=True)
    if len(present) < 2:
        raise ValueError(f"A head needs photos of at least 2 classes, got classes {present.tolist()!r}.")
    counts = np.bincount(code, minlength=len(present))
    # scikit-learn's class_weight="balanced": n / (classes * count), each row weighted by its class
    per_class = n / (len(present) * counts) if class_weights else np.ones(len(present))
    weight = per_class[code]
    weight_sum = float(weight.sum())
    mean, scale = standardisation(features, rows, chunk=chunk)
    d = int(mean.shape[0])
    binary = len(present) == 2
    outputs = 1 if binary else len(present)
    penalty = 1.0 / (strength * weight_sum)

    inverse_scale = 1.0 / scale.astype(np.float64)

    def loss_and_gradient(flat):
        # The standardisation is folded into the weights: z @ coef.T = r @ (coef / scale).T - (mean / scale) @ coef.T,
        # so a chunk is only rooted (no subtracting and dividing of every number, every iteration).
        params = flat.reshape(outputs, d + 1)
        folded = params[:, :d] * inverse_scale
        folded32 = folded.astype(np.float32)
        intercept = params[:, d] - folded @ mean.astype(np.float64)
        loss, grad_raw, grad_intercept = 0.0, np.zeros((outputs, d)), np.zeros(outputs)
        for start, stop in _chunks(n, chunk):
            x = _rooted_chunk(features, start, stop, rows)
            logits = (x @ folded32.T).astype(np.float64) + intercept
            w, c = weight[start:stop], code[start:stop]
            if binary:
                s = logits[:, 0]
                truth = (c == 1).astype(np.float64)
                loss += float(w @ (np.logaddexp(0.0, s) - truth * s))
                g = ((_sigmoid(s) - truth) * w)[:, None]
            else:
                top = logits.max(axis=1, keepdims=True)
                exp = np.exp(logits - top)
                total = exp.sum(axis=1, keepdims=True)
                loss += float(w @ (np.log(total[:, 0]) + top[:, 0] - logits[np.arange(len(c)), c]))
                g = exp / total
                g[np.arange(len(c)), c] -= 1.0
                g *= w[:, None]
            grad_raw += (g.T.astype(np.float32) @ x).astype(np.float64)
            grad_intercept += g.sum(axis=0)
        # back through the folding: d/dcoef = (G.T @ r - outer(G.sum, mean)) / scale
        grad_coef = (grad_raw - np.outer(grad_intercept, mean.astype(np.float64))) * inverse_scale
        coef = params[:, :d]
        loss = loss / weight_sum + 0.5 * penalty * float(np.sum(coef * coef))
        gradient = np.concatenate([grad_coef / weight_sum + penalty * coef, (grad_intercept / weight_sum)[:, None]],
                                  axis=1)
        return loss, gradient.ravel()

    result = minimize(loss_and_gradient, np.zeros(outputs * (d + 1)), method="L-BFGS-B", jac=True,
                      options={"maxiter": max_iter, "maxls": 50, "gtol": TOLERANCE, "ftol": 64 * np.finfo(float).eps})
    params = result.x.reshape(outputs, d + 1)
    kernel = np.zeros((d, n_classes), dtype=np.float32)
    bias = np.zeros(n_classes, dtype=np.float32)
    if binary:  # as fit_head splits scikit-learn's one logit between both classes
        kernel[:, present[1]], kernel[:, present[0]] = params[0, :d] / 2, -params[0, :d] / 2
        bias[present[1]], bias[present[0]] = params[0, d] / 2, -params[0, d] / 2
    else:
        kernel[:, present] = params[:, :d].T
        bias[present] = params[:, d]
    bias[np.setdiff1d(np.arange(n_classes), present)] = -1e4  # a class absent from these photos never wins
    return Head(mean, scale, kernel, bias)


def _sigmoid(s: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -s))
