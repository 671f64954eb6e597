//! A frame through a compiled logical pipeline as the chassis decides it (no datapath):
//! for tests that look at the decision itself.

use ovnest_logical::{
    Interpreter, Semantics, TraceOptions, execute::Decision, flow::Field, pipeline::Pipeline,
    trace::NoTrace,
};

/// `frame` from logical port `inport` through `p`'s pipelines, in chassis semantics.
pub fn decide(p: &Pipeline, inport: &str, frame: &[u8]) -> Decision {
    let (mut flow, _) = ovnest_datapath::flow::extract(frame).expect("frame");
    let port = p.port_by_name(inport).expect("port");
    flow.set_reg(14, port.key);
    flow.set(Field::Metadata, u128::from(p.datapath(port.dp).key));
    let mut it = Interpreter::new(p, NoTrace, Semantics::Chassis, TraceOptions::default());
    it.run(port.dp, &mut flow);
    it.decision
}
