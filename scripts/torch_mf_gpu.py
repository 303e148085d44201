"""The recommender's MFBlock in PyTorch eager on the GPU: the same model, optimizer and
batch as benches/gpu_train.rs (user/item Embedding(64) -> Linear(64,64)+ReLU ->
Dropout(0.5) -> dot; 0.5*(p-r)^2; SGD lr 0.02 momentum 0.9; batch 1024; batches uploaded
from host memory each step). Dense embedding gradients, as PyTorch's default.
Prints one JSON line per vocabulary size."""
import json, sys, time
import torch

def run(users, items, steps, sparse):
    dev = torch.device("cuda")
    torch.manual_seed(1)

    class MF(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.u = torch.nn.Embedding(users, 64, sparse=sparse)
            self.i = torch.nn.Embedding(items, 64, sparse=sparse)
            self.ud = torch.nn.Linear(64, 64)
            self.id = torch.nn.Linear(64, 64)
            self.drop = torch.nn.Dropout(0.5)

        def forward(self, u, i):
            a = self.drop(torch.relu(self.ud(self.u(u))))
            b = self.drop(torch.relu(self.id(self.i(i))))
            return (a * b).sum(1)

    net = MF().to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9)
    n, batch = 64 * 1024, 1024
    u = torch.randint(0, users, (n,))
    i = torch.randint(0, items, (n,))
    r = torch.randint(1, 6, (n,)).float()

    def step(s):
        o = (s % 64) * batch
        ub, ib, rb = (t[o:o + batch].to(dev) for t in (u, i, r))
        loss = (0.5 * (net(ub, ib) - rb) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for s in range(20):
        step(s)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for s in range(steps):
        step(s)
    torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t)

if __name__ == "__main__":
    for users, items in [(20_000, 5_000), (150_000, 38_000)]:
        for sparse in (False, True):
            try:
                sps = run(users, items, 300, sparse)
                print(json.dumps({"harness": "pytorch-eager", "sparse_grad": sparse, "users": users,
                                  "items": items, "samples_per_sec": round(sps)}), flush=True)
            except Exception as e:  # report and go on: the table shows what ran
                print(json.dumps({"harness": "pytorch-eager", "sparse_grad": sparse, "users": users,
                                  "error": str(e)[:200]}), flush=True)
