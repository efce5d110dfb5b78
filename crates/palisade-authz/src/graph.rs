//! Small graph algorithms over dense `u32` node ids, shared by role
//! inheritance and group membership: cycle detection that names the cycle,
//! transitive closure, longest chain and shortest path (for explanations).

use std::collections::VecDeque;

/// Adjacency lists: `edges[n]` are the nodes `n` points at (the roles it
/// inherits, the groups it is a member of).
pub(crate) type Edges = Vec<Vec<u32>>;

/// A post-order of the graph (every node after all nodes it reaches), or the
/// nodes of one cycle (first node repeated at the end).
pub(crate) fn post_order(edges: &Edges) -> Result<Vec<u32>, Vec<u32>> {
    const WHITE: u8 = 0;
    const GREY: u8 = 1;
    const BLACK: u8 = 2;
    let mut colour = vec![WHITE; edges.len()];
    let mut order = Vec::with_capacity(edges.len());
    // Explicit stack of (node, index of the next edge to follow): a deep
    // hierarchy must not overflow the thread's stack.
    let mut stack: Vec<(u32, usize)> = Vec::new();
    for root in 0..edges.len() {
        if colour[root] != WHITE {
            continue;
        }
        colour[root] = GREY;
        stack.push((root as u32, 0));
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&child) = edges[node as usize].get(*next) {
                *next += 1;
                match colour[child as usize] {
                    WHITE => {
                        colour[child as usize] = GREY;
                        stack.push((child, 0));
                    }
                    GREY => {
                        let start = stack.iter().position(|&(n, _)| n == child).unwrap_or(0);
                        let mut cycle: Vec<u32> = stack[start..].iter().map(|&(n, _)| n).collect();
                        cycle.push(child);
                        return Err(cycle);
                    }
                    _ => {}
                }
            } else {
                colour[node as usize] = BLACK;
                order.push(node);
                stack.pop();
            }
        }
    }
    Ok(order)
}

/// For every node, the sorted set of nodes it reaches, itself included.
pub(crate) fn closures(edges: &Edges, post_order: &[u32]) -> Vec<Box<[u32]>> {
    let mut out: Vec<Box<[u32]>> = vec![Box::default(); edges.len()];
    for &node in post_order {
        let children = &edges[node as usize];
        let mut set = Vec::with_capacity(1 + children.len());
        set.push(node);
        for &child in children {
            set.extend_from_slice(&out[child as usize]);
        }
        set.sort_unstable();
        set.dedup();
        out[node as usize] = set.into_boxed_slice();
    }
    out
}

/// The number of edges on the longest chain starting at any node.
pub(crate) fn longest_chain(edges: &Edges, post_order: &[u32]) -> usize {
    let mut depth = vec![0usize; edges.len()];
    let mut longest = 0;
    for &node in post_order {
        let d = edges[node as usize]
            .iter()
            .map(|&c| depth[c as usize] + 1)
            .max()
            .unwrap_or(0);
        depth[node as usize] = d;
        longest = longest.max(d);
    }
    longest
}

/// A shortest path `from → … → to` (both included), if `to` is reachable.
pub(crate) fn shortest_path(edges: &Edges, from: u32, to: u32) -> Option<Vec<u32>> {
    if from == to {
        return Some(vec![from]);
    }
    let mut parent: Vec<Option<u32>> = vec![None; edges.len()];
    let mut queue = VecDeque::from([from]);
    parent[from as usize] = Some(from);
    while let Some(node) = queue.pop_front() {
        for &child in &edges[node as usize] {
            if parent[child as usize].is_some() {
                continue;
            }
            parent[child as usize] = Some(node);
            if child == to {
                let mut path = vec![to];
                let mut at = to;
                while at != from {
                    at = parent[at as usize]?;
                    path.push(at);
                }
                path.reverse();
                return Some(path);
            }
            queue.push_back(child);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_names_a_cycle() {
        let edges = vec![vec![1], vec![2], vec![0], vec![]];
        assert_eq!(post_order(&edges), Err(vec![0, 1, 2, 0]));
    }

    #[test]
    fn closure_of_a_diamond_holds_each_node_once() {
        // 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3
        let edges = vec![vec![1, 2], vec![3], vec![3], vec![]];
        let order = post_order(&edges).unwrap();
        let closures = closures(&edges, &order);
        assert_eq!(&*closures[0], &[0, 1, 2, 3]);
        assert_eq!(longest_chain(&edges, &order), 2);
        assert_eq!(shortest_path(&edges, 0, 3).map(|p| p.len()), Some(3));
        assert_eq!(shortest_path(&edges, 3, 0), None);
    }
}
