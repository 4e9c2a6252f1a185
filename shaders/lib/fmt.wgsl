// The flattened format every kernel decodes and rounds with; mirrors src/gpu/params.rs.

// A format, flattened (16 words).
struct Fmt {
    kind: u32,          // 0 float, 1 fixed point
    bits: u32,          // code width
    m: u32,             // mantissa bits (float)
    bias: i32,          // exponent bias (float)
    specials: u32,      // 0 ieee, 1 nan, 2 none
    subnormals: u32,    // 1 if the zero exponent field holds subnormals
    max_code: u32,      // magnitude code of the largest finite value (float)
    top_field_exp: i32, // exponent of the all-ones exponent field (float)
    sign_bit: u32,      // the sign bit of a code (float)
    inf_code: u32,      // magnitude code of Inf, or NONE
    nan_code: u32,      // canonical NaN code, or NONE
    fl: u32,            // fractional bits (fixed)
    max_int: u32,       // largest positive integer (fixed)
    min_int_mag: u32,   // magnitude of the most negative integer (fixed)
    emax: i32,          // floor(log2(max))
    max_bits: u32,      // f32 bits of the largest finite value
}

const NONE: u32 = 0xffffffffu;
const WG: u32 = 256u;

// The work item of an invocation in a (possibly two-dimensional) dispatch.
fn item_index(gid: vec3<u32>, groups_x: u32) -> u32 {
    return gid.x + gid.y * groups_x * WG;
}

// Lanes of a workgroup that share a run of items: WG on a GPU, the SIMD width (8) on a CPU
// adapter (src/gpu/dispatch.rs sets it from the context). It must divide WG, or groups'
// runs would overlap; the context refuses any other width.
override RUN_LANES: u32 = 256u;

// The items of an invocation where its kernel loops over them (an entry point that takes
// `num_workgroups`): each workgroup a run of whole workgroups' worth of consecutive items,
// split among its groups of RUN_LANES lanes, each group a run of consecutive items; an
// invocation's items are first, first + RUN_LANES, ... below end (src/gpu/dispatch.rs
// looping_grid gives a CPU adapter a few workgroups a core; with a workgroup per WG items,
// the item is item_index's). On a GPU (RUN_LANES = WG) a workgroup's lanes load
// neighbouring items together; on a CPU adapter, which runs each group of 8 lanes through
// its whole loop before the next, each group walks its run in order, so its loads stream
// (with the whole workgroup's stride, a group touched a new page every item and missed
// the caches once a run outgrew them: 3x slower on 1M values). Every item is below count,
// so an item's body checks no bound of its own.
fn item_run(gid: vec3<u32>, groups_x: u32, nwg: vec3<u32>, count: u32) -> vec2<u32> {
    let t = nwg.x * nwg.y * WG;
    let per = count / t + select(0u, 1u, count % t != 0u);
    let i = item_index(gid, groups_x);
    let l = i % WG;
    let start = ((i / WG) * WG + (l / RUN_LANES) * RUN_LANES) * per;
    if (start >= count) {
        return vec2(0u, 0u);
    }
    return vec2(start + l % RUN_LANES, start + min(per * RUN_LANES, count - start));
}
