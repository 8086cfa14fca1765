"""int8 vs float32 features on unseen photos: the engine's features (square roots of block4_pool and block5_pool
averages) of the same 1,500 flowers-full photos at 224 px, float32 from bench_features.py's cache and int8 from
the product's feature pass, the same 10 splits (40 a class to learn from, 1,300 unseen), the same head.

    python bench/bench_features.py          # first: fills the float32 cache (/tmp/quasar-bench-features)
    python bench/bench_int8_accuracy.py [FLOAT_CACHE_DIR] [INT8_CACHE_DIR]
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
from quasar_core import backbone
from quasar_core.data import load_folder
from quasar_core.features.cache import FeatureCache, FeatureSpec
from quasar_core.features.extract import FeaturePass, network_provider
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
d = np.load(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/quasar-bench-features") / "flowers-full-pool1500-seed0-224px.npz")
names = [str(n) for n in d["names"]]
from quasar_core.data import Limits
ds = load_folder(common.photos_dir("flowers"), limits=Limits.from_env(max_images=100000))
index = {s.name: i for i, s in enumerate(ds.samples)}
rows = [index.get(n, index.get(n.split("/")[-1])) for n in names]
sub = ds.subset(rows)
w = common.weights_path(); cache = FeatureCache(Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/quasar-bench-int8-cache"))
spec = FeatureSpec(backbone.weights_id(w), 224, "int8")
nf = network_provider(weights=w, image_size=224, precision="int8", base_loader=common.shared_base_loader(), cache=cache)
q = FeaturePass(spec=spec, network_for=nf, cache=cache).features(sub, np.arange(len(sub)))[0]
f = np.hstack([d["block4"], d["block5"]])
y = d["targets"]
assert (sub.targets() == y).all()
cos = (q * f).sum(1) / np.linalg.norm(q, axis=1) / np.linalg.norm(f, axis=1)
print(f"cosine int8 vs float32 (raw 1,024): mean {cos.mean():.4f} min {cos.min():.4f}")
res = {"float32": [], "int8": []}
for seed in range(10):
    rng = np.random.default_rng(seed)
    tr = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:40] for c in np.unique(y)])
    te = np.setdiff1d(np.arange(len(y)), tr)
    for k, F in (("float32", np.sqrt(f)), ("int8", np.sqrt(np.maximum(q, 0)))):
        g = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced")),
                         {"logisticregression__C": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]},
                         cv=StratifiedKFold(5, shuffle=True, random_state=seed))
        g.fit(F[tr], y[tr]); res[k].append((g.predict(F[te]) == y[te]).mean())
a, b = np.array(res["float32"]), np.array(res["int8"])
print(f"unseen ({len(te)} photos x 10 splits): float32 {a.mean():.4f}, int8 {b.mean():.4f}, int8 - float32 {(b-a).mean()*100:+.2f} points (se {(b-a).std(ddof=1)/np.sqrt(10)*100:.2f}), worst split {(b-a).min()*100:+.2f}")
