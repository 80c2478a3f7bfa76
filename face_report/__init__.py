__version__ = "0.1.0"

import os as _os
# TensorFlow reads this once, when it is first imported, so it is set here, before any module imports Keras. oneDNN's
# kernels train Model A 1.6x faster on AVX2-only CPUs, where TensorFlow leaves them off (it turns them on by itself
# only on CPUs with AVX-512 VNNI/BF16 or AMX); see `face_report.training.onednn_enabled`. TF_ENABLE_ONEDNN_OPTS=0 opts out.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
