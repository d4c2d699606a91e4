#!/usr/bin/env python3
"""PyTorch reference for dfl-nn: DFL's SAEHD/Quick96 nets, loss and optimizers.

Written from DFL's leras semantics (../../shared/design/dfl-models.md §5.0-§5.3), independently
of the Rust code, so that the Rust crate can be checked against it.

Two uses, both run by hand (never in CI):

1. Parity fixtures (tiny nets, a few MB in all):

       python3 -m venv /work/venv-nn && /work/venv-nn/bin/pip install torch numpy safetensors
       /work/venv-nn/bin/python tools/reference/nn_reference.py fixtures crates/dfl-nn/tests/fixtures

   For each arch it writes `parity_<archi>.safetensors` with the initial weights (`w.<name>`,
   dfl-rs tensor names and layouts), the inputs (`in.*`), the forward outputs (`out.*`), the
   per-sample losses (`loss.src`, `loss.dst`) and, after one training step, the first values of
   every weight (`step.<name>`); plus `optim.safetensors` with two steps of each optimizer at lr 1e-3
   (`step.<adabelief|rmsprop|adabelief_clip>.<name>`). The metadata header records the options.

2. Timing reference for `dfl bench nn` (one JSON line on stdout):

       python nn_reference.py bench --archi liae-ud --resolution 128 --batch 8 --threads 2 --steps 5
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------
# leras layers


def glorot_(t, fan_in, fan_out):
    lim = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        t.uniform_(-lim, lim)
    return t


class Conv2d(nn.Module):
    """leras Conv2D: symmetric padding k//2 ('SAME'), Glorot kernel, zero bias. OIHW."""

    def __init__(self, i, o, k, stride=1, padding=None):
        super().__init__()
        self.stride = stride
        self.padding = k // 2 if padding is None else padding
        self.weight = nn.Parameter(glorot_(torch.empty(o, i, k, k), k * k * i, k * k * o))
        self.bias = nn.Parameter(torch.zeros(o))

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class Dense(nn.Module):
    """leras Dense: weight (in, out)."""

    def __init__(self, i, o):
        super().__init__()
        self.weight = nn.Parameter(glorot_(torch.empty(i, o), i, o))
        self.bias = nn.Parameter(torch.zeros(o))

    def forward(self, x):
        return x @ self.weight + self.bias


def depth_to_space(x, b=2):
    """TF DCR order: out[c, b*y+dy, b*x+dx] = in[(dy*b+dx)*C + c, y, x]."""
    n, c4, h, w = x.shape
    c = c4 // (b * b)
    return x.reshape(n, b, b, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, h * b, w * b)


def pixel_norm(x):
    return x * torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True) + 1e-6)


def make_act(c):
    if c:
        return lambda x, a: x * torch.cos(x)
    return lambda x, a: F.leaky_relu(x, a)


class Downscale(nn.Module):
    def __init__(self, i, o, k, act):
        super().__init__()
        self.conv1 = Conv2d(i, o, k, stride=2)
        self.act = act

    def forward(self, x):
        return self.act(self.conv1(x), 0.1)


class DownscaleBlock(nn.Module):
    def __init__(self, i, ch, n, k, act):
        super().__init__()
        downs = []
        last = i
        for j in range(n):
            cur = ch * min(2 ** j, 8)
            downs.append(Downscale(last, cur, k, act))
            last = cur
        self.downs = nn.ModuleList(downs)

    def forward(self, x):
        for d in self.downs:
            x = d(x)
        return x


class Upscale(nn.Module):
    def __init__(self, i, o, act):
        super().__init__()
        self.conv1 = Conv2d(i, o * 4, 3)
        self.act = act

    def forward(self, x):
        return depth_to_space(self.act(self.conv1(x), 0.1), 2)


class ResidualBlock(nn.Module):
    def __init__(self, ch, act):
        super().__init__()
        self.conv1 = Conv2d(ch, ch, 3)
        self.conv2 = Conv2d(ch, ch, 3)
        self.act = act

    def forward(self, inp):
        x = self.act(self.conv1(inp), 0.2)
        x = self.conv2(x)
        return self.act(inp + x, 0.2)


# ----------------------------------------------------------------------------------------------
# DeepFakeArchi


def parse_archi(a):
    kind, _, opts = a.partition("-")
    return kind, opts


class Encoder(nn.Module):
    def __init__(self, e, opts, act):
        super().__init__()
        self.t = "t" in opts
        self.u = "u" in opts
        if self.t:
            self.down1 = Downscale(3, e, 5, act)
            self.res1 = ResidualBlock(e, act)
            self.down2 = Downscale(e, e * 2, 5, act)
            self.down3 = Downscale(e * 2, e * 4, 5, act)
            self.down4 = Downscale(e * 4, e * 8, 5, act)
            self.down5 = Downscale(e * 8, e * 8, 5, act)
            self.res5 = ResidualBlock(e * 8, act)
        else:
            self.down1 = DownscaleBlock(3, e, 4, 5, act)

    def forward(self, x):
        if self.t:
            x = self.down1(x)
            x = self.res1(x)
            x = self.down2(x)
            x = self.down3(x)
            x = self.down4(x)
            x = self.down5(x)
            x = self.res5(x)
        else:
            x = self.down1(x)
        x = x.reshape(x.shape[0], -1)  # NCHW flatten is C-major
        if self.u:
            x = pixel_norm(x)
        return x


class Inter(nn.Module):
    def __init__(self, i, ae, out, ldr, opts, act):
        super().__init__()
        self.ldr, self.out = ldr, out
        self.dense1 = Dense(i, ae)
        self.dense2 = Dense(ae, ldr * ldr * out)
        self.t = "t" in opts
        if not self.t:
            self.upscale1 = Upscale(out, out, act)

    def forward(self, x):
        x = self.dense2(self.dense1(x))
        x = x.reshape(x.shape[0], self.out, self.ldr, self.ldr)
        if not self.t:
            x = self.upscale1(x)
        return x


class Decoder(nn.Module):
    def __init__(self, i, d, m, opts, act):
        super().__init__()
        self.t, self.dd = "t" in opts, "d" in opts
        U = lambda a, b: Upscale(a, b, act)
        R = lambda c: ResidualBlock(c, act)
        if not self.t:
            self.upscale0 = U(i, d * 8)
            self.upscale1 = U(d * 8, d * 4)
            self.upscale2 = U(d * 4, d * 2)
            self.res0 = R(d * 8)
            self.res1 = R(d * 4)
            self.res2 = R(d * 2)
            self.upscalem0 = U(i, m * 8)
            self.upscalem1 = U(m * 8, m * 4)
            self.upscalem2 = U(m * 4, m * 2)
            self.out_conv = Conv2d(d * 2, 3, 1)
            if self.dd:
                self.out_conv1 = Conv2d(d * 2, 3, 3)
                self.out_conv2 = Conv2d(d * 2, 3, 3)
                self.out_conv3 = Conv2d(d * 2, 3, 3)
                self.upscalem3 = U(m * 2, m)
                self.out_convm = Conv2d(m, 1, 1)
            else:
                self.out_convm = Conv2d(m * 2, 1, 1)
        else:
            self.upscale0 = U(i, d * 8)
            self.upscale1 = U(d * 8, d * 8)
            self.upscale2 = U(d * 8, d * 4)
            self.upscale3 = U(d * 4, d * 2)
            self.res0 = R(d * 8)
            self.res1 = R(d * 8)
            self.res2 = R(d * 4)
            self.res3 = R(d * 2)
            self.upscalem0 = U(i, m * 8)
            self.upscalem1 = U(m * 8, m * 8)
            self.upscalem2 = U(m * 8, m * 4)
            self.upscalem3 = U(m * 4, m * 2)
            self.out_conv = Conv2d(d * 2, 3, 1)
            if self.dd:
                self.out_conv1 = Conv2d(d * 2, 3, 3)
                self.out_conv2 = Conv2d(d * 2, 3, 3)
                self.out_conv3 = Conv2d(d * 2, 3, 3)
                self.upscalem4 = U(m * 2, m)
                self.out_convm = Conv2d(m, 1, 1)
            else:
                self.out_convm = Conv2d(m * 2, 1, 1)

    def forward(self, z):
        x = self.upscale0(z)
        x = self.res0(x)
        x = self.upscale1(x)
        x = self.res1(x)
        x = self.upscale2(x)
        x = self.res2(x)
        if self.t:
            x = self.upscale3(x)
            x = self.res3(x)
        if self.dd:
            x = torch.sigmoid(depth_to_space(torch.cat(
                (self.out_conv(x), self.out_conv1(x), self.out_conv2(x), self.out_conv3(x)), 1), 2))
        else:
            x = torch.sigmoid(self.out_conv(x))
        m = self.upscalem0(z)
        m = self.upscalem1(m)
        m = self.upscalem2(m)
        if self.t:
            m = self.upscalem3(m)
            if self.dd:
                m = self.upscalem4(m)
        elif self.dd:
            m = self.upscalem3(m)
        return x, torch.sigmoid(self.out_convm(m))


class Nets(nn.Module):
    """SAEHD generator nets with dfl-rs tensor names (DFL's model names)."""

    def __init__(self, archi, res, ae, e, d, m):
        super().__init__()
        kind, opts = parse_archi(archi)
        self.kind = kind
        act = make_act("c" in opts)
        self.encoder = Encoder(e, opts, act)
        with torch.no_grad():
            enc_out = self.encoder(torch.zeros(1, 3, res, res)).shape[1]
        ldr = res // 32 if "d" in opts else res // 16
        if kind == "df":
            self.inter = Inter(enc_out, ae, ae, ldr, opts, act)
            self.decoder_src = Decoder(ae, d, m, opts, act)
            self.decoder_dst = Decoder(ae, d, m, opts, act)
        else:
            self.inter_AB = Inter(enc_out, ae, ae * 2, ldr, opts, act)
            self.inter_B = Inter(enc_out, ae, ae * 2, ldr, opts, act)
            self.decoder = Decoder(ae * 4, d, m, opts, act)

    def forward(self, ws, wd, src_dst=True):
        """Returns dict of pred_src_src(+m), pred_dst_dst(+m) and, with `src_dst`,
        pred_src_dst(+m) (the training loss does not need it, so DFL's graph never runs it)."""
        out = {}
        if self.kind == "df":
            cs = self.inter(self.encoder(ws))
            cd = self.inter(self.encoder(wd))
            ss, ssm = self.decoder_src(cs)
            dd, ddm = self.decoder_dst(cd)
            if src_dst:
                out["pred_src_dst"], out["pred_src_dstm"] = self.decoder_src(cd)
        else:
            es, ed = self.encoder(ws), self.encoder(wd)
            sab = self.inter_AB(es)
            dab, db = self.inter_AB(ed), self.inter_B(ed)
            ss, ssm = self.decoder(torch.cat([sab, sab], 1))
            dd, ddm = self.decoder(torch.cat([db, dab], 1))
            if src_dst:
                out["pred_src_dst"], out["pred_src_dstm"] = self.decoder(torch.cat([dab, dab], 1))
        out.update(pred_src_src=ss, pred_src_srcm=ssm, pred_dst_dst=dd, pred_dst_dstm=ddm)
        return out


# ----------------------------------------------------------------------------------------------
# leras losses (direct 2-D forms)


def gaussian_blur(x, sigma):
    k = max(3, int(4 * sigma))
    if k % 2 == 0:
        k += 1
    mean = math.floor(0.5 * k)
    g = np.array([math.exp(-((i - mean) ** 2) / (2 * sigma ** 2)) for i in range(k)])
    kern = np.outer(g, g).astype(np.float32)
    kern = kern / kern.sum()
    c = x.shape[1]
    w = torch.from_numpy(kern)[None, None].repeat(c, 1, 1, 1).to(device=x.device, dtype=x.dtype)
    return F.conv2d(x, w, padding=k // 2, groups=c)


def dssim(a, b, filter_size, sigma=1.5):
    n = max(1, filter_size)
    d = (np.arange(n, dtype=np.float32) - (n - 1) / 2.0) ** 2 * (-0.5 / sigma ** 2)
    logits = d.reshape(1, -1) + d.reshape(-1, 1)
    kern = torch.softmax(torch.from_numpy(logits.reshape(-1)), 0).reshape(n, n)
    c = a.shape[1]
    w = kern[None, None].repeat(c, 1, 1, 1).to(device=a.device, dtype=a.dtype)
    f = lambda x: F.conv2d(x, w, groups=c)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    m0, m1 = f(a), f(b)
    num0 = m0 * m1 * 2.0
    den0 = m0 * m0 + m1 * m1
    lum = (num0 + c1) / (den0 + c1)
    num1 = f(a * b) * 2.0
    den1 = f(a * a + b * b)
    cs = (num1 - num0 + c2) / (den1 - den0 + c2)
    ssim = torch.mean(lum * cs, dim=(2, 3))
    return (1.0 - ssim) / 2.0


def side_loss(t, p, res, mask, pmask, em=None, tgt=None, pred=None):
    if res < 256:
        l = 10 * torch.mean(dssim(t, p, int(res / 11.6)), dim=1)
    else:
        l = 5 * torch.mean(dssim(t, p, int(res / 11.6)), dim=1) + \
            5 * torch.mean(dssim(t, p, int(res / 23.2)), dim=1)
    l = l + 10 * torch.mean((t - p) ** 2, dim=(1, 2, 3))
    if em is not None:
        l = l + 300 * torch.mean(torch.abs(tgt * em - pred * em), dim=(1, 2, 3))
    return l + 10 * torch.mean((mask - pmask) ** 2, dim=(1, 2, 3))


def g_losses(nets, batch, res, saturate, eyes_mouth, src_dst=False):
    o = nets(batch["warped_src"], batch["warped_dst"], src_dst)
    blur = max(1, res // 32)

    def lmask(m):
        b = gaussian_blur(m, blur)
        return torch.clamp(b, 0, 0.5) * 2 if saturate else b

    ms, md = lmask(batch["target_srcm"]), lmask(batch["target_dstm"])
    ts, ps = batch["target_src"] * ms, o["pred_src_src"] * ms
    td, pd = batch["target_dst"] * md, o["pred_dst_dst"] * md
    src = side_loss(ts, ps, res, batch["target_srcm"], o["pred_src_srcm"],
                    batch["target_srcm_em"] if eyes_mouth else None, batch["target_src"], o["pred_src_src"])
    dst = side_loss(td, pd, res, batch["target_dstm"], o["pred_dst_dstm"],
                    batch["target_dstm_em"] if eyes_mouth else None, batch["target_dst"], o["pred_dst_dst"])
    return o, src, dst


# ----------------------------------------------------------------------------------------------
# DFL optimizers


class DflOptim:
    def __init__(self, params, kind, lr, clipnorm=0.0, lr_cos=0):
        self.params = list(params)
        self.kind, self.lr, self.clipnorm, self.lr_cos = kind, lr, clipnorm, lr_cos
        self.iters = 0
        self.s1 = [torch.zeros_like(p) for p in self.params]
        self.s2 = [torch.zeros_like(p) for p in self.params]
        self.eps = 1e-6

    @torch.no_grad()
    def step(self):
        """One update with PyTorch's multi-tensor (`_foreach_*`) kernels, as its own
        optimizers do."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        if self.clipnorm > 0:
            norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
            if norm >= self.clipnorm:
                grads = torch._foreach_mul(grads, self.clipnorm / norm)
        lr = self.lr
        if self.lr_cos:
            lr = lr * (math.cos(self.iters * (2 * 3.1415926535 / self.lr_cos)) + 1.0) / 2.0
        if self.kind == "adabelief":
            torch._foreach_mul_(self.s1, 0.9)
            torch._foreach_add_(self.s1, grads, alpha=0.1)
            d = torch._foreach_sub(grads, self.s1)
            torch._foreach_mul_(self.s2, 0.999)
            torch._foreach_addcmul_(self.s2, d, d, value=0.001)
            den = torch._foreach_sqrt(self.s2)
            torch._foreach_add_(den, self.eps)
            torch._foreach_addcdiv_(self.params, self.s1, den, value=-lr)
        else:
            torch._foreach_mul_(self.s1, 0.9)
            torch._foreach_addcmul_(self.s1, grads, grads, value=0.1)
            den = torch._foreach_sqrt(self.s1)
            torch._foreach_add_(den, self.eps)
            torch._foreach_addcdiv_(self.params, grads, den, value=-lr)
        self.iters += 1

    def zero_grad(self):
        for p in self.params:
            p.grad = None


# ----------------------------------------------------------------------------------------------
# synthetic inputs (independent of the Rust generator; any values in [0,1] do)


def make_batch(b, res, gen):
    def img():
        return torch.rand(b, 3, res, res, generator=gen)

    def mask():
        yy, xx = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
        out = []
        for _ in range(b):
            cx, cy = res * (0.4 + 0.2 * torch.rand(1, generator=gen)), res * (0.4 + 0.2 * torch.rand(1, generator=gen))
            r = res * (0.25 + 0.1 * torch.rand(1, generator=gen))
            out.append((((xx - cx) ** 2 + (yy - cy) ** 2) <= r * r).float()[None])
        return torch.stack(out)

    ts, td = img(), img()
    return dict(
        warped_src=(ts + 0.1 * torch.rand(b, 3, res, res, generator=gen)).clamp(0, 1),
        target_src=ts, target_srcm=mask(), target_srcm_em=mask() * 0.5,
        warped_dst=(td + 0.1 * torch.rand(b, 3, res, res, generator=gen)).clamp(0, 1),
        target_dst=td, target_dstm=mask(), target_dstm_em=mask() * 0.5,
    )


# ----------------------------------------------------------------------------------------------
# fixtures

HEAD = 64  # values of every weight kept after the training steps


def build(archi, res, dims, seed):
    torch.manual_seed(seed)
    ae, e, d, m = dims
    nets = Nets(archi, res, ae, e, d, m)
    gen = torch.Generator().manual_seed(seed + 1)
    return nets, make_batch(2, res, gen)


def train_steps(nets, batch, res, opt_kind, lr, saturate, eyes_mouth, clipnorm, steps):
    opt = DflOptim(nets.parameters(), opt_kind, lr, clipnorm)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        _, s, dl = g_losses(nets, batch, res, saturate, eyes_mouth)
        losses.append((float(s.detach().mean()), float(dl.detach().mean())))
        (s + dl).sum().backward()
        opt.step()
    return {n: p.detach().reshape(-1)[:HEAD].clone() for n, p in nets.named_parameters()}, losses


def save(out_dir, name, tensors, meta):
    from safetensors.torch import save_file

    tensors = {k: v.contiguous().float() for k, v in tensors.items()}
    path = os.path.join(out_dir, name)
    save_file(tensors, path, metadata={k: str(v) for k, v in meta.items()})
    print(f"wrote {path}: {sum(v.numel() for v in tensors.values()) * 4 / 1e6:.2f} MB", file=sys.stderr)


def export_parity(out_dir, archi, res, dims, opt_kind, lr, saturate, eyes_mouth, name, seed):
    nets, batch = build(archi, res, dims, seed)
    tensors = {"w." + k: v.clone() for k, v in nets.state_dict().items()}
    tensors.update({"in." + k: v.clone() for k, v in batch.items()})
    o, src, dst = g_losses(nets, batch, res, saturate, eyes_mouth, src_dst=True)
    tensors.update({"out." + k: v.detach().clone() for k, v in o.items()})
    tensors["loss.src"] = src.detach().clone()
    tensors["loss.dst"] = dst.detach().clone()
    # One step: tiny LIAE nets are ill-conditioned after the first update (a 3e-8 change of
    # the weights moves some gradients by 1-3 %, in PyTorch as much as in dfl-rs), so a second
    # step would compare rounding noise. The optimizer fixture below takes two steps on DF-UD.
    after, _ = train_steps(nets, batch, res, opt_kind, lr, saturate, eyes_mouth, 0.0, 1)
    tensors.update({"step." + k: v for k, v in after.items()})
    ae, e, d, m = dims
    save(out_dir, name, tensors, dict(archi=archi, resolution=res, ae_dims=ae, e_dims=e, d_dims=d,
                                      d_mask_dims=m, optimizer=opt_kind, lr=repr(lr),
                                      saturate=saturate, eyes_mouth=eyes_mouth, head=HEAD))


def export_optim(out_dir, seed):
    """One net and batch, two steps with each optimizer at lr 1e-3 (differences visible)."""
    archi, res, dims = "df-ud", 32, DIMS
    nets, batch = build(archi, res, dims, seed)
    tensors = {"w." + k: v.clone() for k, v in nets.state_dict().items()}
    tensors.update({"in." + k: v.clone() for k, v in batch.items()})
    init = {k: v.clone() for k, v in nets.state_dict().items()}
    for kind, clip, tag in [("adabelief", 0.0, "adabelief"), ("rmsprop", 0.0, "rmsprop"),
                            ("adabelief", 1.0, "adabelief_clip")]:
        nets.load_state_dict(init)
        after, _ = train_steps(nets, batch, res, kind, 1e-3, True, False, clip, 2)
        tensors.update({f"step.{tag}.{k}": v for k, v in after.items()})
    ae, e, d, m = dims
    save(out_dir, "optim.safetensors", tensors, dict(archi=archi, resolution=res, ae_dims=ae, e_dims=e,
                                                     d_dims=d, d_mask_dims=m, lr="0.001", head=HEAD))


DIMS = (4, 2, 2, 2)  # ae, e, d, mask: tiny nets, same wiring as the real ones


def fixtures(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    # Forward + loss + two SAEHD steps (AdaBelief at SAEHD's lr) for each wiring/variant.
    for i, (archi, res) in enumerate([("df", 32), ("liae", 32), ("df-ud", 32), ("liae-ud", 32),
                                      ("df-tc", 32), ("liae-udt", 32)]):
        export_parity(out_dir, archi, res, DIMS, "adabelief", 5e-5, True, archi == "df-ud",
                      f"parity_{archi}.safetensors", 100 + i)
    # Quick96 wiring at a tiny size: df-ud, plain blurred masks, RMSprop lr 2e-4 (no dropout).
    export_parity(out_dir, "df-ud", 32, DIMS, "rmsprop", 2e-4, False, False,
                  "parity_quick96.safetensors", 200)
    export_optim(out_dir, 300)


# ----------------------------------------------------------------------------------------------
# bench


def bench(args):
    """Fastest of `steps` runs of one SAEHD training step (AdaBelief, masked, no extras) and
    of its phases: forward + loss, backward, optimizer update. The minimum, not the median:
    on a shared machine it is the figure least disturbed by other load."""
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as TensorFlow (DFL's engine) does on CPU
    torch.manual_seed(0)
    res = args.resolution
    dev = torch.device(args.device)
    # cuDNN picks its fastest kernels for these shapes, as TensorFlow does on GPUs.
    torch.backends.cudnn.benchmark = True
    nets = Nets(args.archi, res, args.ae_dims, args.e_dims, args.d_dims, args.d_mask_dims).to(dev)
    gen = torch.Generator().manual_seed(1)
    batch = {k: v.to(dev) for k, v in make_batch(args.batch, res, gen).items()}
    opt = DflOptim(nets.parameters(), "adabelief", 5e-5)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def step():
        sync()
        t0 = time.perf_counter()
        opt.zero_grad()
        _, s, d = g_losses(nets, batch, res, True, False)
        loss = (s + d).sum()
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        opt.step()
        sync()
        t3 = time.perf_counter()
        return t3 - t0, t1 - t0, t2 - t1, t3 - t2

    step()
    runs = [step() for _ in range(args.steps)]
    best = lambda i: min(r[i] for r in runs) * 1000.0
    print(json.dumps(dict(ms=best(0), forward_ms=best(1), backward_ms=best(2), update_ms=best(3),
                          torch=torch.__version__, threads=torch.get_num_threads())))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fixtures")
    f.add_argument("out_dir")
    b = sub.add_parser("bench")
    b.add_argument("--archi", default="liae-ud")
    b.add_argument("--resolution", type=int, default=128)
    b.add_argument("--batch", type=int, default=4)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--steps", type=int, default=5)
    b.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    b.add_argument("--ae-dims", type=int, default=256)
    b.add_argument("--e-dims", type=int, default=64)
    b.add_argument("--d-dims", type=int, default=64)
    b.add_argument("--d-mask-dims", type=int, default=22)
    a = p.parse_args()
    if a.cmd == "fixtures":
        fixtures(a.out_dir)
    else:
        bench(a)


if __name__ == "__main__":
    main()
