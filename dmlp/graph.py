"""The feature graph of the final decision and of the label-propagation baselines.

A cosine kNN search (:func:`knn_graph`: exhaustive for small inputs, an inverted file for large
ones), the symmetric normalised affinity ``S = D^-1/2 (W + W') D^-1/2`` with
``W_ij = max(cos_ij, 0)^power`` (:func:`knn_weights`, :func:`normalised_affinity`) and the
propagation ``F <- alpha S F + (1 - alpha) Y0`` (:func:`propagate`; Zhou et al., 2004).
Shapes are written ``(N, k)``: N rows, k neighbours per row.  Cost: the search is
``N x candidates x d`` multiply-adds, the affinity ``O(N k)`` memory, each propagation step one
sparse product ``O(N k C)``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import reverse_cuthill_mckee

from .errors import InputError
from .numerics import CHUNK_ELEMENTS, CHUNK_ROWS, PROB_FLOOR
from .seeds import rng, torch_seed

#: Floor of a row's degree before ``deg^-1/2`` (rows without edges keep no entries anyway).
DEGREE_FLOOR = 1e-12


def unit_rows(X: torch.Tensor) -> torch.Tensor:
    """Rows of ``X`` (N, d) scaled to unit L2 norm (rows of norm below ``PROB_FLOOR`` stay ~0)."""
    return X / X.norm(dim=1, keepdim=True).clamp_min(PROB_FLOOR)


def knn_weights(similarity, power: float, out=None) -> torch.Tensor:
    """Edge weights ``max(similarity, 0)^power`` of a kNN list.

    Parameters
    ----------
    similarity : array-like of shape (N, k)
        Cosine similarities of each row to its neighbours (any float dtype, kept).
    power : float
        Exponent: sharpens the weights towards the nearest neighbours.
    out : torch.Tensor of shape (N, k), optional
        Computed in place there (``similarity`` itself, when it is not needed afterwards).

    Returns
    -------
    torch.Tensor of shape (N, k)
    """
    similarity = torch.as_tensor(similarity)
    if out is None:
        return similarity.clamp_min(0).pow(power)
    return out.copy_(similarity).clamp_min_(0).pow_(power)


def normalised_affinity(neighbours: np.ndarray, weights: np.ndarray) -> sp.csr_matrix:
    """Symmetric normalised affinity ``D^-1/2 (W + W') D^-1/2`` of a kNN list.

    Parameters
    ----------
    neighbours : np.ndarray of shape (N, k), integer
        Column index of each row's neighbours.
    weights : np.ndarray of shape (N, k)
        Their weights ``W_ij`` (:func:`knn_weights`); the dtype of the result.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (N, N)
        Zero-weight edges (negative similarity, padding) dropped.
    """
    n, k = neighbours.shape
    # W row by row (k entries each) straight into CSR form, then symmetrised and scaled in place
    W = sp.csr_matrix((np.ascontiguousarray(weights).reshape(-1), neighbours.reshape(-1),
                       np.arange(0, n * k + 1, k, dtype=np.int64)), shape=(n, n))
    W = (W + W.T).tocsr()
    W.eliminate_zeros()
    deg = np.asarray(W.sum(1)).ravel()
    inv = (1.0 / np.sqrt(np.maximum(deg, DEGREE_FLOOR))).astype(W.dtype)
    W.data *= inv[W.indices]                                        # columns
    W.data *= np.repeat(inv, np.diff(W.indptr))                     # rows
    return W


def propagate(S, seeds, alpha: float, steps: int, read_out: bool = True):
    """Label propagation ``F <- alpha S F + (1 - alpha) Y0`` from ``F = Y0 = seeds``.

    Linear in the seeds: several seedings propagate at once as column blocks of ``seeds``.
    Each step is one sparse-dense product of torch (threaded, and on the seeds' device); wide
    seeds go in column groups of at most :data:`dmlp.numerics.CHUNK_ELEMENTS` values, whose
    columns propagate independently, so the temporaries stay bounded at many classes.  A scipy
    ``S`` is first renumbered in reverse Cuthill-McKee order (:func:`permuted_graph`): the same
    sums in the same order, read from memory that is closer together.

    Parameters
    ----------
    S : scipy.sparse matrix or torch sparse CSR tensor of shape (N, N)
        The affinity (:func:`normalised_affinity`, :func:`sparse_tensor`; a tensor is used in
        its own order).
    seeds : np.ndarray or torch.Tensor of shape (N, C)
        ``Y0``; its type, dtype and device are kept.
    alpha : float
        Weight of the neighbours against the seeds, in [0, 1).
    steps : int
        Iterations.
    read_out : bool
        Return ``S F`` (each row read from its neighbours only, so a seed does not vouch for
        itself) instead of ``F``.

    Returns
    -------
    np.ndarray or torch.Tensor of shape (N, C), as ``seeds``
    """
    seeds_t = torch.as_tensor(seeds)
    order = None
    if sp.issparse(S):         # rows renumbered so that neighbours sit close in memory
        S = S.tocsr()
        order = reverse_cuthill_mckee(S, symmetric_mode=True).astype(np.int64)
        S = permuted_graph(S, order)
        order = torch.from_numpy(order).to(seeds_t.device)
    A = sparse_tensor(S, seeds_t.dtype, seeds_t.device)
    n, width = seeds_t.shape
    group = max(1, CHUNK_ELEMENTS // max(1, n))
    result = torch.empty_like(seeds_t)
    for c in range(0, width, group):
        Y = seeds_t[:, c:c + group]
        Y = Y.contiguous() if order is None else Y[order]
        F, out = Y.clone(), torch.empty_like(Y)
        for _ in range(steps):
            torch.addmm(Y, A, F, beta=1 - alpha, alpha=alpha, out=out)
            F, out = out, F
        F = torch.mm(A, F, out=out) if read_out else F
        if order is None:
            result[:, c:c + group] = F
        else:
            result[:, c:c + group].index_copy_(0, order, F)
    return result.numpy() if isinstance(seeds, np.ndarray) else result


def permuted_graph(S: sp.csr_matrix, order: np.ndarray) -> sp.csr_matrix:
    """``S[order][:, order]``, each row's entries kept in their stored order.

    A product with it then sums every row in the same order as with ``S``: the propagation is
    bit for bit the same, only the memory it reads is closer together (reverse Cuthill-McKee
    puts a row's neighbours near it, so a sparse product reads nearby rows of ``F`` from cache).

    Parameters
    ----------
    S : scipy.sparse.csr_matrix of shape (N, N)
    order : np.ndarray of shape (N,), int64
        A permutation: row ``i`` of the result is row ``order[i]`` of ``S``.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (N, N)
    """
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    lengths = np.diff(S.indptr)[order]
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    source = np.repeat(S.indptr[order] - indptr[:-1], lengths) + np.arange(indptr[-1])
    return sp.csr_matrix((S.data[source], position[S.indices[source]], indptr), shape=S.shape)


def sparse_tensor(S, dtype: torch.dtype = torch.float32, device="cpu") -> torch.Tensor:
    """``S`` as a torch sparse CSR tensor of ``dtype`` on ``device`` (kept if it is one already).

    Parameters
    ----------
    S : scipy.sparse matrix or torch sparse CSR tensor of shape (N, N)

    Returns
    -------
    torch.Tensor, sparse CSR layout
    """
    if isinstance(S, torch.Tensor):
        return S.to(device=device, dtype=dtype)
    S = S.tocsr()
    with warnings.catch_warnings():          # "sparse CSR support is in beta": the product is not
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(S.indptr.astype(np.int64)),
                                       torch.from_numpy(S.indices.astype(np.int64)),
                                       torch.from_numpy(S.data).to(dtype), size=S.shape).to(device)


def knn_graph(features: torch.Tensor, k: int, power: float = 3.0, seed: int = 0,
              candidates: int = 7000, overwrite_input: bool = False,
              search: str = "inverted_file") -> sp.csr_matrix:
    """Symmetric, normalised cosine kNN graph ``D^-1/2 (W + W') D^-1/2``, ``W_ij = max(sim, 0)^power``.

    Parameters
    ----------
    features : torch.Tensor of shape (N, d)
    k : int
        Neighbours per row.
    power : float
        Of the edge weights (:func:`knn_weights`).
    seed, candidates, overwrite_input
        Of the search (:func:`knn_search`).
    search : {"inverted_file", "faiss"}
        :func:`knn_search`, or faiss's inverted file (:func:`faiss_knn_search`).

    Returns
    -------
    scipy.sparse.csr_matrix of shape (N, N), float32
    """
    if search == "faiss":
        neighbours, similarity = faiss_knn_search(features, k, seed, candidates)
    else:
        neighbours, similarity = knn_search(features, k, seed, candidates, overwrite_input)
    weights = knn_weights(similarity, power, out=similarity).numpy()
    columns = neighbours.to(torch.int32).numpy()
    del neighbours, similarity
    return normalised_affinity(columns, weights)


def exact_knn_search(features: torch.Tensor, k: int, *, block_size: int = 1024):
    """Exact ``k`` nearest neighbours under cosine similarity, the row itself excluded.

    Rows are L2-normalised and similarities computed block by block (``block_size x N`` at a
    time, never ``N x N``).  Only the row itself is excluded (its diagonal entry is masked);
    exact duplicates of a row are legitimate neighbours.  Cost ``N^2 d``: for the baselines and
    as the reference of :func:`knn_search`'s recall.

    Parameters
    ----------
    features : torch.Tensor of shape (N, d), float32
    k : int
        In ``1..N-1``.
    block_size : int
        Query rows per block.

    Returns
    -------
    indices : np.ndarray of shape (N, k), int64
    similarity : np.ndarray of shape (N, k), float32
        In decreasing order.
    """
    Z = unit_rows(features)
    n = Z.shape[0]
    idx_out = np.empty((n, k), dtype=np.int64)
    sim_out = np.empty((n, k), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, n, block_size):
            stop = min(start + block_size, n)
            S = Z[start:stop] @ Z.T
            rows = torch.arange(stop - start)
            S[rows, rows + start] = -float("inf")
            vals, inds = torch.topk(S, k, dim=1)
            idx_out[start:stop] = inds.numpy()
            sim_out[start:stop] = vals.numpy()
    return idx_out, sim_out


def require_search(search: str):
    """The module a kNN ``search`` needs (faiss for ``"faiss"``, else None), checked up front.

    Raises
    ------
    InputError
        ``search`` is ``"faiss"`` and faiss is not installed.
    """
    if search != "faiss":
        return None
    try:
        import faiss
    except ImportError:
        raise InputError("graph_search = 'faiss' needs faiss: pip install 'dmlp[faiss]' (or faiss-cpu)") from None
    return faiss


def faiss_knn_search(features: torch.Tensor, k: int, seed: int = 0, candidates: int = 7000):
    """The ``k`` most cosine-similar rows of every row (itself excluded), searched by faiss.

    faiss's ``IndexIVFFlat`` (Johnson et al., IEEE TBD 2019) on the unit-norm rows: ~sqrt(N)
    k-means lists trained on a seeded sample of 64 rows per list, and each query scans its own
    nearest lists, as many as make about ``candidates`` rows.  Small inputs (N <= 20,000) are
    searched exhaustively (:func:`exact_knn_search`).  Arguments and results as
    :func:`knn_search`; the similarities are float32 whatever the dtype of ``features``.

    Raises
    ------
    InputError
        faiss is not installed.
    """
    faiss = require_search("faiss")
    n = features.shape[0]
    k = min(k, n - 1)
    if n <= 20000:
        idx, sim = exact_knn_search(features.float(), k)
        return torch.from_numpy(idx), torch.from_numpy(sim)

    def unit_chunk(rows) -> np.ndarray:       # float32, normalised: chunk by chunk, no full copy
        return unit_rows(features[rows].float()).numpy()

    n_lists, d = int(math.sqrt(n)), features.shape[1]
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, n_lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    sample = rng(seed, "graph_index").choice(n, size=min(n, 64 * n_lists), replace=False)
    index.train(unit_chunk(torch.as_tensor(sample)))
    for s in range(0, n, CHUNK_ROWS):
        index.add(unit_chunk(slice(s, s + CHUNK_ROWS)))
    index.nprobe = max(1, round(candidates * n_lists / n))
    neighbours = torch.empty(n, k, dtype=torch.long)
    similarity = torch.empty(n, k)
    for s in range(0, n, CHUNK_ROWS):
        D, I = index.search(unit_chunk(slice(s, s + CHUNK_ROWS)), k + 1)
        rows = np.arange(s, s + len(I))[:, None]
        drop = I == rows                                       # the row itself ...
        drop[~drop.any(1), -1] = True                          # ... or, if absent, the last
        keep = np.argsort(drop, axis=1, kind="stable")[:, :k]
        I, D = np.take_along_axis(I, keep, 1), np.take_along_axis(D, keep, 1)
        missing = I < 0                                        # fewer candidates than k: no edge
        I[missing], D[missing] = np.broadcast_to(rows, I.shape)[missing], -3.0
        neighbours[s:s + len(I)], similarity[s:s + len(I)] = torch.from_numpy(I), torch.from_numpy(D)
    return neighbours, similarity


#: Columns per chunk of :func:`row_topk`'s first stage.
TOPK_CHUNK = 32


def row_topk(S: torch.Tensor, k: int):
    """The ``k`` largest entries of each row of ``S`` (b, w), in decreasing order, as ``S.topk(k, 1)``.

    Exact, in two stages: the row's columns are cut into chunks of :data:`TOPK_CHUNK`, and the
    ``k`` largest entries lie within the ``k`` chunks of largest maxima (each chunk holding one
    of them has a maximum at least the k-th largest entry, and only ``k`` entries are that
    large).  So one pass of chunk maxima and a top-k over ``k x TOPK_CHUNK`` gathered entries
    replace the top-k over ``w`` (docs/benchmarks.md, "kNN search").  Equal entries may come in
    another order than ``topk``'s (their values agree).  Used on float32 only: bfloat16's
    rounding makes ties common, and there it is no faster.  Falls back to ``topk`` for other
    dtypes, where ``w`` is not a multiple of the chunk, or where ``k`` is not small against the
    chunk count.

    Returns
    -------
    values : torch.Tensor of shape (b, k), S's dtype
    indices : torch.Tensor of shape (b, k), int64
        Columns of ``S``.
    """
    b, w = S.shape
    n_chunks = w // TOPK_CHUNK
    if S.dtype != torch.float32 or w % TOPK_CHUNK or 4 * k > n_chunks:
        return S.topk(k, dim=1)
    chunk_max = S.view(b, n_chunks, TOPK_CHUNK).amax(2)
    chunks = chunk_max.topk(k, dim=1, sorted=False).indices                      # b x k
    columns = (chunks.unsqueeze(2) * TOPK_CHUNK + torch.arange(TOPK_CHUNK)).view(b, -1)
    values, j = S.gather(1, columns).topk(k, dim=1)
    return values, columns.gather(1, j)


def knn_search(features: torch.Tensor, k: int, seed: int = 0, candidates: int = 7000,
               overwrite_input: bool = False):
    """The ``k`` most cosine-similar rows of every row (itself excluded).

    Neighbours are searched in an inverted file (Jegou et al., TPAMI 2011): rows are bucketed by
    their nearest of ~sqrt(n) spherical k-means centroids, and each bucket is compared with the
    rows of the buckets nearest to it, as many as make about ``candidates`` rows (the recall
    of the search grows with it; its cost is n x candidates instead of n^2).
    Small inputs are searched exhaustively.  Similarities are computed in the dtype of
    ``features`` (float32, or bfloat16 where the features are held so: 2-3x faster; neighbours
    whose similarities differ by less than its rounding, 2^-8, may swap ranks, but their
    weights are then equal to that precision too).  ``overwrite_input=True`` normalises
    ``features`` in place instead of copying it (the caller's copy is not needed afterwards).

    Returns
    -------
    neighbours : torch.Tensor of shape (N, k), int64
    similarity : torch.Tensor of shape (N, k), float32
        Their cosine similarities, in decreasing order.
    """
    dtype = features.dtype if features.dtype in (torch.float32, torch.bfloat16) else torch.float32
    Z = features if overwrite_input and features.dtype == dtype else torch.empty(features.shape, dtype=dtype)
    for s in range(0, len(features), CHUNK_ROWS):        # normalise in float32, chunk by chunk
        Z[s:s + CHUNK_ROWS] = unit_rows(features[s:s + CHUNK_ROWS].float())
    n = Z.shape[0]
    k = min(k, n - 1)
    n_lists = int(math.sqrt(n))
    probes = max(1, round(candidates * n_lists / n))
    if n <= 20000 or n_lists <= probes:
        groups, candidate_sets = [torch.arange(n)], [torch.arange(n)]
    else:
        groups, candidate_sets = inverted_file_candidates(Z, n_lists, probes, seed)
    # Fixed-size buffers: matrix products of ever-changing shapes each leave memory behind
    # (allocator fragmentation, oneDNN's per-shape cache), so the
    # candidate sets are padded to multiples of 1024 rows and the queries to blocks of 256.
    neighbours = torch.zeros(n, k, dtype=torch.long)
    similarity = torch.zeros(n, k)
    d, block = Z.shape[1], 256
    c_max = -(-max(len(c) for c in candidate_sets) // 1024) * 1024
    Zc_buf = torch.zeros(c_max, d, dtype=Z.dtype)
    Zq_buf = torch.zeros(block, d, dtype=Z.dtype)
    sim_buf = torch.empty(block * c_max, dtype=Z.dtype)
    for members, cand in zip(groups, candidate_sets):
        width = -(-len(cand) // 1024) * 1024
        Zc = Zc_buf[:width]
        torch.index_select(Z, 0, cand, out=Zc[:len(cand)])
        Zc[len(cand):] = 0                                           # padding rows: never chosen
        cand_pad = torch.cat([cand, torch.full((width - len(cand),), n, dtype=torch.long)])
        k_eff = min(k, len(cand) - 1)
        for s in range(0, len(members), block):
            q = members[s:s + block]
            torch.index_select(Z, 0, q, out=Zq_buf[:len(q)])
            sim = sim_buf[:block * width].view(block, width)
            torch.mm(Zq_buf, Zc.T, out=sim)
            v, i = row_topk(sim, k_eff + 1)                         # k + 1: the row itself is among them
            v, i = v[:len(q)].float(), cand_pad[i[:len(q)]]
            pad = i == n
            i[pad] = q.unsqueeze(1).expand_as(i)[pad]                  # (a zero-weight self edge)
            v[(i == q.unsqueeze(1)) | pad] = -3.0                   # never your own neighbour
            v, j = v.topk(k_eff, dim=1)                             # (else the (k+1)-th drops out)
            neighbours[q, :k_eff] = i.gather(1, j)
            similarity[q, :k_eff] = v
    return neighbours, similarity


def inverted_file_candidates(Z, n_lists, probes, seed, iters=5):
    """Query groups and their candidate rows for an inverted-file kNN search.

    Parameters
    ----------
    Z : torch.Tensor of shape (N, d)
        Unit-norm rows.
    n_lists : int
        Number of spherical k-means centroids (buckets).
    probes : int
        Buckets compared with each bucket (its nearest centroids, itself included).
    seed : int
        Seed of the k-means sample and initialisation.
    iters : int
        k-means iterations on the sample.

    Returns
    -------
    groups, candidates : list of torch.Tensor
        ``groups[l]`` the rows of bucket ``l`` (non-empty buckets only), ``candidates[l]`` the
        rows of its ``probes`` nearest buckets.
    """
    g = torch.Generator().manual_seed(torch_seed(seed, "graph_index"))
    sample = Z[torch.randperm(Z.shape[0], generator=g)[: 64 * n_lists]].float()
    cent = sample[torch.randperm(sample.shape[0], generator=g)[:n_lists]].clone()
    for _ in range(iters):           # spherical k-means on a sample
        assign = (sample @ cent.T).argmax(1)
        cent.index_add_(0, assign, sample, alpha=1.0)   # keep old centre as a weak prior
        cent = torch.nn.functional.normalize(cent, dim=1)
    cent = cent.to(Z.dtype)
    assign = torch.cat([(Z[s:s + CHUNK_ROWS] @ cent.T).argmax(1) for s in range(0, Z.shape[0], CHUNK_ROWS)])
    near = (cent.float() @ cent.float().T).topk(probes, dim=1).indices
    order = torch.argsort(assign, stable=True)
    counts = torch.bincount(assign, minlength=n_lists)
    starts = torch.cumsum(counts, 0) - counts
    members = [order[starts[l]:starts[l] + counts[l]] for l in range(n_lists)]
    groups, candidates = [], []
    for l in range(n_lists):
        if len(members[l]):
            groups.append(members[l])
            candidates.append(torch.cat([members[j] for j in near[l].tolist()]))
    return groups, candidates
