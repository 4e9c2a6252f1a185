// Eight f32 values a subgroup shares (a panel's eight rows of A at one k): lo rows 0-3,
// hi rows 4-7. `spread8(v)`, which the shader assembly defines after this with BROADCAST,
// gives lanes 0 to 7's `v` to every lane of the subgroup.
struct Lanes8 {
    lo: vec4<f32>,
    hi: vec4<f32>,
}
