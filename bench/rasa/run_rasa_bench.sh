#!/usr/bin/env bash
# Side-by-side benchmark: Rasa 3.6 default DIET pipeline on CLINC150 (train -> val).
# Needs a Rasa venv OUTSIDE the repo (Rasa 3.6 needs Python 3.10):
#   $(pyenv root)/versions/3.10.13/bin/python -m venv /work/rasa-venv
#   /work/rasa-venv/bin/pip install rasa==3.6.21
# Run in the background, on an otherwise idle machine (52 min measured on 2 idle cores,
# about 31 s per epoch; under load an epoch took up to 15 min, so don't `nice` it):
#   nohup bash bench/rasa/run_rasa_bench.sh > /work/rasa-bench.log 2>&1 &
# Results: $WORK/train_time.json and $WORK/eval.json, merged into
# bench/results/nlu_rasa_diet_e$EPOCHS.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
RASA_VENV=${RASA_VENV:-/work/rasa-venv}
WORK=${WORK:-/work/rasa-bench}
CLINC=${CLINC:-../shared/data/clinc150/train_val.json}
EPOCHS=${EPOCHS:-100}
export TF_CPP_MIN_LOG_LEVEL=2 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

mkdir -p "$WORK" bench/results
"$RASA_VENV/bin/python" bench/rasa/clinc_to_rasa.py "$CLINC" "$WORK/data"
sed "s/epochs: 100/epochs: $EPOCHS/" bench/rasa/config.yml > "$WORK/config.yml"

REPO=$(pwd)
start=$(date +%s.%N)
# Rasa writes a .rasa/ cache into the working directory: keep it out of the repo.
(cd "$WORK" && "$RASA_VENV/bin/rasa" train nlu --config "$WORK/config.yml" --nlu "$WORK/data/train/nlu.yml" \
  --out "$WORK/models" --fixed-model-name "clinc-diet-e$EPOCHS")
end=$(date +%s.%N)
python3 - "$start" "$end" "$EPOCHS" > "$WORK/train_time.json" <<'PY'
import json, sys
s, e, ep = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(json.dumps({"train_seconds": round(e - s, 1), "epochs": ep}))
PY
cat "$WORK/train_time.json"

(cd "$WORK" && "$RASA_VENV/bin/python" "$REPO/bench/rasa/eval_rasa.py" "$WORK/models/clinc-diet-e$EPOCHS.tar.gz" \
  "$WORK/data/val/nlu.yml" "$WORK/eval.json")
python3 - "$WORK/train_time.json" "$WORK/eval.json" > "bench/results/nlu_rasa_diet_e$EPOCHS.json" <<'PY'
import json, sys
out = json.load(open(sys.argv[2])); out.update(json.load(open(sys.argv[1])))
print(json.dumps(out, indent=2))
PY
echo "done: bench/results/nlu_rasa_diet_e$EPOCHS.json"
