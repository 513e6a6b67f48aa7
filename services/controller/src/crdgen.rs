//! Prints the AvatarRender CustomResourceDefinition as YAML (`make crd` writes it to
//! `crd/avatarrender.yaml` and the chart's `crds/`).
fn main() {
    print!("{}", avatar_controller::crd_yaml());
}
