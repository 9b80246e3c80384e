"""CMAB-NAS: neural architecture search as a combinatorial multi-armed bandit, solved by nested Monte-Carlo search
over a weight-sharing supernet (Huang, Ma, Erfani, Bailey, IJCNN 2021). The tree search runs in C++
(csrc/cpu/nmcs.cpp; robustfast.reference.nmcs is its Python oracle)."""
from robustfast.nas import synthetic
from robustfast.nas.final import Network, train_genotype
from robustfast.nas.search import CMABNAS, SearchResult
from robustfast.nas.space import DARTS_OPS, Genotype, SearchSpace, load_genotype, save_genotype
from robustfast.nas.supernet import Supernet
from robustfast.nas.tree import NMCSTree, nested_search

__all__ = ["CMABNAS", "DARTS_OPS", "Genotype", "NMCSTree", "Network", "SearchResult", "SearchSpace", "Supernet",
           "load_genotype", "nested_search", "save_genotype", "synthetic", "train_genotype"]
