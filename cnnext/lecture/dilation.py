"""Item 9: dilated convolution and gridding: which input pixels one output of a stack of dilated 3x3 layers
sees (cnnext.receptive_field.path_counts), beside the HDC rule's M_i (cnnext.hdc_check)."""
import numpy as np

from ..models.dilated import hdc_check
from ..receptive_field import path_counts, receptive_field_size
from .figures import plt, save

RATES = ([1, 2, 5], [2, 2, 2], [2, 4, 6])


def dilation_numbers(quick=False):
    rows = []
    for rates in RATES:
        counts = path_counts(rates)
        check = hdc_check(rates)
        rows.append({"rates": rates, "counts": counts, "size": receptive_field_size(rates),
                     "holes": int((counts == 0).sum()), "seen": int((counts > 0).sum()),
                     "coverage": float((counts > 0).double().mean()), "paths": int(counts.sum()),
                     "hdc": bool(check), "M": list(check.max_distances), "reasons": list(check.reasons)})
    return {"rows": rows}


def plot_dilation(result, path):
    rows = result["rows"]
    figure, axes = plt.subplots(1, len(rows), figsize=(4.3 * len(rows), 4.8))
    for axis, row in zip(axes, rows):
        counts = row["counts"].numpy()
        colours = plt.get_cmap("viridis").with_extremes(bad="red")
        image = axis.imshow(np.ma.masked_equal(counts, 0), cmap=colours, vmin=1)  # holes drawn red
        verdict = "HDC: yes" if row["hdc"] else "HDC: no"
        axis.set_title(f"rates {row['rates']}: {row['size']}x{row['size']}\nM = {row['M']}, {verdict}\n"
                       f"{row['holes']} holes (red), {100 * row['coverage']:.0f} % seen", fontsize="medium")
        axis.set_xticks([])
        axis.set_yticks([])
        figure.colorbar(image, ax=axis, shrink=0.7, label="paths to the centre output")
    figure.suptitle("Receptive field of one output of three stacked dilated 3x3 convolutions "
                    "(red: input pixels it never sees)", fontsize="medium")
    return save(figure, path)


def dilation_handout(result, report, figure):
    report.paragraph("A 3x3 kernel with dilation d samples every d-th pixel: it covers (3 - 1)·d + 1 pixels with 9 "
                     "weights. Stacking dilated layers with a common factor leaves a regular grid of input pixels "
                     "that no path reaches (gridding). The Hybrid Dilated Convolution rule asks that "
                     "M_2 = max(M_3 - 2r_2, M_3 - 2(M_3 - r_2), r_2) ≤ k (with M_n = r_n) and that the rates share "
                     "no common factor. The maps push one pixel through all-ones kernels with `cnnext.conv2d`.")
    report.figure(figure, "Path counts from each input pixel to the centre output; zeros are the holes")
    report.table(["rates", "HDC", "M_i", "receptive field", "pixels seen", "holes", "paths"],
                 [[str(r["rates"]), "yes" if r["hdc"] else "no", str(r["M"]), f"{r['size']}x{r['size']}",
                   f"{r['seen']} ({100 * r['coverage']:.1f} %)", r["holes"], r["paths"]] for r in result["rows"]])
    for row in result["rows"]:
        if row["reasons"]:
            report.paragraph(f"{row['rates']}: " + "; ".join(row["reasons"]))
