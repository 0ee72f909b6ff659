"""The toy-faces world, measured: what the issue asks the closing note to report.

    python benchmarks/toy_faces_report.py [--weights PATH] [--sheet docs/toy-faces.png]

- PSNR of G(z) against render(z) on 200 held-out latents, also of 4x4-pooled images (coarse layout and
  colour only), and where the error is: RMSE inside each part and its share of the squared error;
- per-class pixel share and presence rate (oracle masks of those latents);
- features sanity: a linear per-pixel classifier on the upsampled G features of 16 images, mIoU against
  the oracle on 50 others, next to the same classifier on RGB colour + pixel position alone;
- how closely G follows each latent coordinate: the change of G(z) when one coordinate moves (-1.5 to
  1.5; for a rare part 0 to 2, absent to present), against the renderer's change, as mean absolute
  grey levels and the cosine between the two changes (near 0: G does not draw what that coordinate sets);
- how strongly the mapping network's first layer reads each coordinate (its weight column's norm over the
  median column's): the coordinates G ignores are the ones it barely reads;
- whether G draws the thresholded parts at all (glasses, hat, beard, earrings, and teeth: an open mouth):
  for 64 scenes that have the part (its coordinate spread evenly over the part's range), whether G's
  pixels where the part changes the render are closer to the render with it than to the same scene
  rendered without it (the visible truth's test, ``toy_faces/visible.py``; the share of scenes where
  they are: "drawn"), and how far along from without to with they are on
  average (0 = as without, 1 = as with). A part G does not draw is one whose oracle mask does not line
  up with the GAN image. Read both against chance: an untrained G (random weights) scores about 50% and
  0.5 (its noise lands on either side), while one that always draws the part-less average face scores
  near 0% and well under 0.5;
- per class, the share of 1000 latents whose mask has it under the renderer's truth and the visible
  truth (what the oracle annotates), ``--presence-only`` for just this table;
- the time to sample 1000 images with features on this machine;
- the contact sheet docs/toy-faces.png: 16 GAN samples with the oracle mask over them;
- docs/toy-faces-parts.png: the parts G finds hardest, each in 4 scenes that have it (the part's latent
  coordinate set to 1.4, 1.8, 2.2 and 2.6, so that its styles vary): render | GAN | oracle mask over GAN.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import SGDClassifier
from sklearn.preprocessing import StandardScaler

from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces import CLASSES, load_toy_faces
from dgan_al.generators.toy_faces.distill import HELD_OUT_SEED, psnr
from dgan_al.generators.toy_faces.visible import presence_rates
from dgan_al.report import contact_sheet, overlay

REPORT_SEED = 3_000  # latents for the feature-sanity classifier, disjoint from training / held-out


def upsampled_features(features: list[torch.Tensor], size: int) -> torch.Tensor:
    """[B, D, size, size]: every map bilinearly upsampled (align_corners=False) and concatenated."""
    return torch.cat([F.interpolate(f, size=(size, size), mode="bilinear", align_corners=False) for f in features], 1)


def miou(pred: np.ndarray, truth: np.ndarray, n: int) -> tuple[float, list[float]]:
    ious = []
    for c in range(n):
        inter = np.logical_and(pred == c, truth == c).sum()
        union = np.logical_or(pred == c, truth == c).sum()
        ious.append(float(inter / union) if union else float("nan"))
    return float(np.nanmean(ious)), ious


def pixel_classifier(train_x, train_y, test_x, test_y, n_classes, seed=0) -> tuple[float, list[float]]:
    scaler = StandardScaler().fit(train_x)
    clf = SGDClassifier(loss="log_loss", alpha=1e-5, max_iter=30, tol=None, random_state=seed)
    clf.fit(scaler.transform(train_x), train_y)
    pred = np.concatenate([clf.predict(scaler.transform(test_x[i:i + 50_000])) for i in range(0, len(test_x), 50_000)])
    return miou(pred, test_y, n_classes)


def latent_following(gen, n: int = 16) -> list[dict]:
    """Per latent coordinate: mean |change| of G's image and of the renderer's, and their cosine."""
    from dgan_al.generators.toy_faces.scene import LATENT_NAMES, RARE_LATENT_INDEX, with_coordinates

    z = sample_latents(gen.z_dim, n, seed=REPORT_SEED + 2).numpy()
    rows = []
    for k, name in enumerate(LATENT_NAMES):
        low, high = (0.0, 2.0) if k in RARE_LATENT_INDEX.values() else (-1.5, 1.5)
        z_low, z_high = (torch.from_numpy(with_coordinates(z, {k: v})).float() for v in (low, high))
        d_gan = (gen.synthesize(z_high).images.float() - gen.synthesize(z_low).images.float()).reshape(n, -1)
        d_render = torch.from_numpy(gen.render(z_high)[0].astype(np.float32) - gen.render(z_low)[0].astype(np.float32))
        d_render = d_render.reshape(n, -1)
        cosine = F.cosine_similarity(d_gan, d_render, dim=1, eps=1e-6).mean()
        rows.append({"coordinate": k, "sets": name, "gan_change": float(d_gan.abs().mean()),
                     "render_change": float(d_render.abs().mean()), "cosine": float(cosine)})
    return rows


def parts_drawn(gen, n: int = 64) -> list[dict]:
    """Per thresholded part: in n scenes that have it, how often and how fully G draws it (see the top).

    The test is the visible truth's (``toy_faces.visible.part_drawn``): G's pixels where the scene's
    render with the part differs from the same scene rendered without it."""
    from scipy.special import ndtri

    from dgan_al.generators.toy_faces.render import render
    from dgan_al.generators.toy_faces.scene import (LATENT_NAMES, MOUTH_OPEN_THRESHOLD, RARE_LATENT_INDEX,
                                                     RARE_THRESHOLD, params_from_latent, with_coordinates)
    from dgan_al.generators.toy_faces.visible import part_drawn, without

    parts = {name: (k, RARE_THRESHOLD) for name, k in RARE_LATENT_INDEX.items()}
    parts["teeth"] = (LATENT_NAMES.index("mouth open"), MOUTH_OPEN_THRESHOLD)
    rows = []
    for name, (k, threshold) in parts.items():
        z = sample_latents(gen.z_dim, n, seed=REPORT_SEED + 4).numpy()
        u = threshold + (1 - threshold) * (np.arange(n) + 0.5) / n  # present, evenly over its range
        with_part = with_coordinates(z, {k: ndtri(u)})
        fake = gen.synthesize(torch.from_numpy(with_part).float()).images.numpy()
        tests = []
        for i in range(n):
            scene = params_from_latent(with_part[i])
            tests.append(part_drawn(fake[i], render(scene)[0], render(without(scene, [name]))[0]))
        seen = [t for t in tests if t.pixels]  # a part can be hidden (earrings under long hair)
        rows.append({"part": name, "coordinate": k, "scenes": len(seen), "drawn": float(np.mean([t.drawn for t in seen])),
                     "closeness": float(np.mean([t.closeness for t in seen])),
                     "pixels": float(np.mean([t.pixels for t in seen]))})
    return rows


def hard_parts_sheet(gen, path: Path) -> None:
    """Render | GAN | oracle mask over the GAN image, for 4 scenes with each rare part and with an open
    mouth (one row each)."""
    from dgan_al.generators.toy_faces.scene import LATENT_NAMES, RARE_LATENT_INDEX, with_coordinates

    rows, captions = [], []
    for part, k in {**RARE_LATENT_INDEX, "open mouth": LATENT_NAMES.index("mouth open")}.items():
        z = sample_latents(gen.z_dim, 4, seed=REPORT_SEED + 3).numpy()
        z = torch.from_numpy(with_coordinates(z, {k: np.array([1.4, 1.8, 2.2, 2.6])})).float()
        fake, (real, masks) = gen.synthesize(z).images.numpy(), gen.render(z)
        rows.append([panel for i in range(4) for panel in (real[i], fake[i], overlay(fake[i], masks[i], 0.55))])
        captions.append(f"{part} (latent {k} = 1.4, 1.8, 2.2, 2.6): render | GAN | oracle mask over GAN")
    contact_sheet(rows, captions, path=path, legend=CLASSES,
                  title=f"toy-faces {gen.identity}: the parts the GAN finds hardest")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--sheet", type=Path, default=Path("docs/toy-faces.png"))
    parser.add_argument("--parts-sheet", type=Path, default=Path("docs/toy-faces-parts.png"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/toy_faces_report.json"))
    parser.add_argument("--presence-only", action="store_true", help="Only the presence table under both truths.")
    args = parser.parse_args()
    torch.manual_seed(0)
    gen = load_toy_faces(path=args.weights) if args.weights else load_toy_faces()
    report: dict = {"generator": gen.identity}
    report["presence_1000"] = presence_rates(gen, n=1000)
    print(f"{'class':<12}{'renderer':>10}{'visible':>9}   (share of 1000 latents whose mask has the class)")
    for name, rate in report["presence_1000"].items():
        print(f"{name:<12}{rate['renderer']:>10.1%}{rate['visible']:>9.1%}")
    if args.presence_only:
        return

    # PSNR against the renderer, per-class share and presence
    z = sample_latents(gen.z_dim, 200, seed=HELD_OUT_SEED)
    images = torch.cat([gen.synthesize(c).images for c in z.split(50)])
    rgb, masks = gen.render(z)
    p = psnr(images, torch.from_numpy(rgb))
    report["psnr_db"] = {"mean": float(p.mean()), "median": float(p.median()), "p10": float(p.quantile(0.1)),
                         "min": float(p.min())}
    # where the error is: coarse layout and colour (PSNR of 4x4-pooled images) vs fine detail, and by part
    fake, real = images.permute(0, 3, 1, 2).float(), torch.from_numpy(rgb).permute(0, 3, 1, 2).float()
    pooled_mse = (F.avg_pool2d(fake, 4) - F.avg_pool2d(real, 4)).square().flatten(1).mean(1)
    report["psnr_4x4_pooled_db"] = float((10 * torch.log10(255.0**2 / pooled_mse)).mean())
    squared = (fake - real).square().mean(1).numpy()  # [200, 128, 128]
    flat_masks = masks.reshape(-1)
    per_class_sq = np.bincount(flat_masks, weights=squared.reshape(-1), minlength=len(CLASSES))
    per_class_n = np.bincount(flat_masks, minlength=len(CLASSES))
    report["error_by_class"] = {
        name: {"rmse": float(np.sqrt(per_class_sq[i] / per_class_n[i])) if per_class_n[i] else None,
               "share_of_squared_error": float(per_class_sq[i] / per_class_sq.sum())}
        for i, name in enumerate(CLASSES)}
    counts = np.stack([np.bincount(m.reshape(-1), minlength=len(CLASSES)) for m in masks])
    report["classes"] = {name: {"pixel_share": float(counts[:, i].sum() / counts.sum()),
                                "presence": float((counts[:, i] > 0).mean())} for i, name in enumerate(CLASSES)}

    # features sanity: linear classifier on G features vs on RGB + position
    rng = np.random.default_rng(0)
    zf = sample_latents(gen.z_dim, 66, seed=REPORT_SEED)
    syn = gen.synthesize(zf)
    feats = upsampled_features(syn.features, 128).permute(0, 2, 3, 1).numpy()  # [66,128,128,D]
    truth = gen.oracle_mask(zf)
    yy, xx = np.mgrid[0:128, 0:128] / 127.0
    colour = np.concatenate([syn.images.numpy() / 255.0, np.broadcast_to(np.stack([yy, xx], -1), (66, 128, 128, 2))], -1)
    train_pix = [rng.choice(128 * 128, 3000, replace=False) for _ in range(16)]

    def split(data):
        flat = data.reshape(66, 128 * 128, -1)
        tr = np.concatenate([flat[i, train_pix[i]] for i in range(16)])
        return tr, flat[16:].reshape(-1, flat.shape[-1])

    y_tr = np.concatenate([truth[i].reshape(-1)[train_pix[i]] for i in range(16)])
    y_te = truth[16:].reshape(-1)
    f_tr, f_te = split(feats)
    report["linear_on_features_miou"], per_f = pixel_classifier(f_tr, y_tr, f_te, y_te, len(CLASSES))
    c_tr, c_te = split(colour)
    report["linear_on_rgb_position_miou"], per_c = pixel_classifier(c_tr, y_tr, c_te, y_te, len(CLASSES))
    report["per_class_iou"] = {n: {"features": a, "rgb_position": b} for n, a, b in zip(CLASSES, per_f, per_c)}

    report["latent_following"] = latent_following(gen)
    # how much the mapping network listens to each coordinate: the norm of its column in the first layer
    # (relative to the median); a coordinate G ignores has a small one
    first = gen.model.mapping.fcs[0].weight.detach()
    norms = first.norm(dim=0) / first.norm(dim=0).median()
    for row, norm in zip(report["latent_following"], norms.tolist()):
        row["mapping_input_norm"] = norm

    report["parts_drawn"] = parts_drawn(gen)

    # speed: 1000 images with features
    zs = sample_latents(gen.z_dim, 1000, seed=REPORT_SEED + 1)
    t0 = time.perf_counter()
    for chunk in zs.split(32):
        gen.synthesize(chunk)
    report["seconds_for_1000_with_features"] = time.perf_counter() - t0

    # contact sheet: GAN image, oracle mask over it
    z16 = torch.cat([gen.mean_latent()[None], sample_latents(gen.z_dim, 15, seed=0)])
    s16 = gen.synthesize(z16)
    m16 = gen.oracle_mask(z16)
    rows = [[s16.images[i].numpy(), overlay(s16.images[i].numpy(), m16[i], 0.55)] for i in range(16)]
    pairs = [rows[i] + rows[i + 1] for i in range(0, 16, 2)]
    caps = [f"{'mean' if i == 0 else f's0-{i - 1:06d}'}  |  s0-{i:06d}" for i in range(0, 16, 2)]
    contact_sheet(pairs, caps, path=args.sheet, scale=2, legend=CLASSES,
                  title=f"toy-faces: GAN sample | oracle mask over it   (PSNR vs renderer {report['psnr_db']['mean']:.1f} dB)")
    hard_parts_sheet(gen, args.parts_sheet)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items()
                      if k not in ("presence_1000", "classes", "per_class_iou", "error_by_class", "latent_following", "parts_drawn")},
                     indent=2))
    print(f"{'z':>2} {'sets':<22}{'|dG|':>7}{'|dR|':>7}{'cosine':>8}{'reads':>7}")
    for row in report["latent_following"]:
        print(f"{row['coordinate']:>2} {row['sets']:<22}{row['gan_change']:>7.2f}{row['render_change']:>7.2f}"
              f"{row['cosine']:>8.2f}{row['mapping_input_norm']:>7.2f}")
    print(f"{'part':<12}{'scenes':>7}{'drawn':>7}{'closeness':>11}{'pixels':>8}")
    for row in report["parts_drawn"]:
        print(f"{row['part']:<12}{row['scenes']:>7}{row['drawn']:>7.0%}{row['closeness']:>11.2f}{row['pixels']:>8.0f}")
    print(f"{'class':<12}{'share':>8}{'present':>9}{'IoU feat':>10}{'IoU rgb':>9}{'RMSE':>7}{'of error':>10}")
    for n in CLASSES:
        c, i, e = report["classes"][n], report["per_class_iou"][n], report["error_by_class"][n]
        rmse = f"{e['rmse']:>7.1f}" if e["rmse"] is not None else f"{'-':>7}"
        print(f"{n:<12}{c['pixel_share']:>8.2%}{c['presence']:>9.1%}{i['features']:>10.3f}{i['rgb_position']:>9.3f}"
              f"{rmse}{e['share_of_squared_error']:>10.1%}")


if __name__ == "__main__":
    main()
