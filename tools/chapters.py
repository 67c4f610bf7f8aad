"""The book's chapter table on the home page: which of the 30 chapters exist ("ready") and which are "coming".

`python tools/chapters.py` rewrites the table in nbs/index.ipynb and the site's sidebar (nbs/sidebar.yml, one
section per part folder) from the notebooks present; then run `python tools/readme.py` to carry the table into
README.md. A chapter is listed as ready only when its notebook exists.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INDEX = ROOT / "nbs/index.ipynb"

# part folder -> part name; chapters: (folder, notebook stem, title, paper)
PARTS = {
 "10_curvature": "1 · Curvature", "20_dynamics": "2 · Dynamics", "30_rl": "3 · Reinforcement learning",
 "40_alignment": "4 · Alignment and unlearning", "50_representation": "5 · Representations and multi-task",
 "60_bilevel": "6 · Bilevel and constrained", "70_distributed": "7 · Private and distributed",
 "80_learned": "8 · Learned and structured solvers", "90_generation": "9 · Generation and attacks"}
CH = [
 ("10_curvature", "10_hessian_spectrum", "Hessian spectra: the bulk and the outliers", "Sagun et al., Empirical analysis of the Hessian of over-parametrized neural networks"),
 ("10_curvature", "11_stability", "Dynamical stability: what SGD's step size caps", "Wu & Su, The implicit regularization of dynamical stability in SGD"),
 ("10_curvature", "12_smoothness", "Gradient-normalised smoothness", "Semenov et al., Gradient-normalized smoothness for optimization with approximate Hessians"),
 ("10_curvature", "13_sven", "Sven: singular value descent", "Bright-Thonney, Harvey, Lukas & Thaler, Sven: singular value descent as a computationally efficient natural gradient method"),
 ("20_dynamics", "20_drift", "Discretisation drift and modified flows", "Rosca et al., On a continuous time model of gradient descent dynamics and instability in deep learning"),
 ("20_dynamics", "21_schedules", "Learning-rate schedules by refinement", "Defazio et al., When, why and how much? Adaptive learning rate scheduling by refinement"),
 ("20_dynamics", "22_diffgrad", "diffGrad: friction from gradient differences", "Dubey et al., diffGrad: an optimization method for convolutional neural networks"),
 ("20_dynamics", "23_node_reg", "Locally regularised neural ODEs", "Pal et al., Locally regularized neural differential equations"),
 ("30_rl", "30_ggd_td", "Generalised-Gaussian TD errors", "Kim et al., Generalized Gaussian temporal difference error for uncertainty-aware RL"),
 ("30_rl", "31_martingale", "Martingale policy evaluation", "Jia & Zhou, Policy evaluation and temporal-difference learning in continuous time and space"),
 ("30_rl", "32_bayes_pg", "Bayesian policy gradients", "Ghavamzadeh, Engel & Valko, Bayesian policy gradient and actor-critic algorithms"),
 ("40_alignment", "40_entanglement", "Gradient entanglement in margin losses", "Yuan et al., A common pitfall of margin-based language model alignment: gradient entanglement"),
 ("40_alignment", "41_wagle", "WAGLE: weight attribution for unlearning", "Jia et al., WAGLE: strategic weight attribution for effective and modular unlearning in LLMs"),
 ("50_representation", "50_gsae", "Gradient sparse autoencoders", "Olmo et al., Features that make a difference: leveraging gradients for improved dictionary learning"),
 ("50_representation", "51_ms_loss", "Multi-similarity loss and pair weighting", "Wang et al., Multi-similarity loss with general pair weighting for deep metric learning"),
 ("50_representation", "52_cdc", "Central difference convolution", "Yu et al., Searching central difference convolutional networks for face anti-spoofing"),
 ("50_representation", "53_cld", "Coresets from loss-difference correlations", "Nagaraj, Ravikumar & Roy, Coresets from trajectories: selecting data via correlation of loss differences"),
 ("50_representation", "54_surgery", "Gradient similarity surgery (SAM-GS)", "Borsani et al., Gradient similarity surgery in multi-task deep learning"),
 ("60_bilevel", "60_implicit", "Implicit differentiation", "Blondel et al., Efficient and modular implicit differentiation"),
 ("60_bilevel", "61_mbbo", "Multi-block bilevel optimisation", "Hu et al., Blockwise stochastic variance-reduced methods for multi-block bilevel optimization"),
 ("60_bilevel", "62_sliding", "Restart-free gradient sliding", "Wu, Xu & Zhang, Restart-free (accelerated) gradient sliding for strongly convex composite optimization"),
 ("60_bilevel", "63_auglag", "Exact augmented Lagrangian with sketching", "Hong et al., Constrained optimization via exact augmented Lagrangian and randomized iterative sketching"),
 ("70_distributed", "70_diff2", "DIFF2: private optimisation by gradient differences", "Murata & Suzuki, DIFF2: differential private optimization via gradient differences"),
 ("70_distributed", "71_coding", "Sequential gradient coding", "Krishnan, Ebrahimi & Khisti, Sequential gradient coding for straggler mitigation"),
 ("80_learned", "80_deep_cg", "Deep conjugate directions", "Kaneda et al., A deep conjugate direction method for iteratively solving linear systems"),
 ("80_learned", "81_gbnn", "Gradient-boosted neural networks", "Emami & Martínez-Muñoz, Sequential training of neural networks with gradient boosting"),
 ("80_learned", "82_tanglenas", "TangleNAS: weight entanglement in differentiable NAS", "Sukthanker et al., TangleNAS: weight-entanglement meets gradient-based neural architecture search"),
 ("90_generation", "90_fdistill", "f-distill: one-step diffusion by f-divergence matching", "Xu, Nie & Vahdat, One-step diffusion models with f-divergence distribution matching"),
 ("90_generation", "91_directional", "Directional attacks with neural surrogates", "Bouchet & Vidal, Optimization by directional attacks"),
 ("90_generation", "92_bmtc", "BMTC: background mixup for transferable attacks", "Li, Ni & Pang, Temporal-consistency-constrained transferable adversarial attacks with background mixup"),
]


def table() -> str:
    "The markdown table, linking the chapters whose notebooks exist."
    rows = ["| # | chapter | paper | part | status |", "|---|---|---|---|---|"]
    for i, (folder, stem, title, paper) in enumerate(CH, 1):
        exists = (ROOT / "nbs" / folder / f"{stem}.ipynb").exists()
        name = f"[{title}]({folder}/{stem}.ipynb)" if exists else title
        rows.append(f"| {i} | {name} | {paper} | {PARTS[folder]} | {'ready' if exists else 'coming'} |")
    return "\n".join(rows)


def update_index() -> bool:
    "Replace the chapter table in the home page's markdown; True if it changed."
    nb = json.loads(INDEX.read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "| # | chapter |" in src:
            head = src[: src.index("| # | chapter |")]
            new = head + table()
            if new == src: return False
            cell["source"] = new.splitlines(keepends=True)
            INDEX.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            return True
    raise SystemExit("no chapter table found in nbs/index.ipynb")


SECTIONS = {"00_foundations": "Foundations: the shared engine", **{k: f"Part {v}" for k, v in PARTS.items()}}


def sidebar() -> str:
    "nbs/sidebar.yml: the home page, then one section per part folder that holds notebooks."
    lines = ["website:", "  sidebar:", "    contents:", "      - index.ipynb"]
    for folder, title in SECTIONS.items():
        nbs = sorted(p.name for p in (ROOT / "nbs" / folder).glob("*.ipynb")) if (ROOT / "nbs" / folder).is_dir() else []
        if not nbs: continue
        lines += [f'      - section: "{title}"', "        contents:"] + [f"          - {folder}/{n}" for n in nbs]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    side = ROOT / "nbs/sidebar.yml"
    if "--check" in sys.argv:
        nb = json.loads(INDEX.read_text())
        ok = any(table() in "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        ok &= side.read_text() == sidebar()
        print("chapter table and sidebar up to date" if ok else "chapter table or sidebar out of date: run python tools/chapters.py")
        sys.exit(0 if ok else 1)
    print("table", "updated" if update_index() else "unchanged")
    side.write_text(sidebar())
