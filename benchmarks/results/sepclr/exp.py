import sys, time, json
from shared.config import apply_overrides
from medical.sepclr.config import SepCLRConfig
from medical.sepclr.train import train_run
out = sys.argv[1]; overrides = sys.argv[2:]
cfg = apply_overrides(SepCLRConfig(), overrides + ["trainer.progress=false"])
t = time.time()
m = train_run(cfg, out)
print(json.dumps({"out": out, "overrides": overrides, "seconds": round(time.time()-t,1), "probes": m["probes"]}))
