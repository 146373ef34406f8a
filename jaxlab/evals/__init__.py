"""Metrics shared by experiments: ARC voting and pass@k (arc), calibration of verbalised confidence
(calibration: accuracy, Brier, ECE, AUROC, reliability diagrams, voting), answer sets (answer_sets)."""
