//! `kaws cluster plan|apply|destroy|output` with the real Terraform and the
//! real AWS provider against moto, checked through the AWS API.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn apply_builds_the_secure_topology_then_plan_is_clean_and_destroy_leaves_nothing() {
    let w = World::new();
    let zone = w.applyable_cluster("e2e", &[]);

    let out = tf(
        &w,
        &[
            "cluster",
            "apply",
            "e2e",
            "--",
            "-auto-approve",
            "-no-color",
        ],
    );
    assert!(out.status.success());
    assert!(
        w.cluster_dir("e2e").join("terraform.tfstate").is_file(),
        "state lives in the cluster directory"
    );

    // The network: one VPC with public subnets in at least two zones.
    let vpcs = json(&w.aws_ok(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=cidr,Values=10.0.0.0/16",
        "Name=tag:Name,Values=e2e",
        "--output",
        "json",
    ]));
    let vpcs = vpcs["Vpcs"].as_array().unwrap();
    assert_eq!(vpcs.len(), 1, "{vpcs:?}");
    let vpc = vpcs[0]["VpcId"].as_str().unwrap().to_string();
    let subnets = json(&w.aws_ok(&[
        "ec2",
        "describe-subnets",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "--output",
        "json",
    ]));
    let zones: std::collections::BTreeSet<&str> = subnets["Subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["AvailabilityZone"].as_str().unwrap())
        .collect();
    assert!(zones.len() >= 2, "{zones:?}");

    // The servers: a bastion and three etcd, all with the key pair.
    let inst = json(&w.aws_ok(&[
        "ec2",
        "describe-instances",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "Name=instance-state-name,Values=running",
        "--output",
        "json",
    ]));
    let instances: Vec<&Value> = inst["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap())
        .collect();
    let role = |i: &Value| -> String {
        i["Tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .find(|t| t["Key"] == "Name")
                    .map(|t| t["Value"].as_str().unwrap().to_string())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    };
    let count = |prefix: &str| {
        instances
            .iter()
            .filter(|i| role(i).starts_with(prefix))
            .count()
    };
    assert_eq!(
        count("e2e-bastion"),
        1,
        "{:?}",
        instances.iter().map(|i| role(i)).collect::<Vec<_>>()
    );
    assert_eq!(count("e2e-etcd-"), 3);
    for i in &instances {
        assert_eq!(i["KeyName"], "kaws-e2e", "every server has the key pair");
        // moto gives instances of an Auto Scaling group only the launch
        // template's user data, type, key and groups: their metadata
        // options are checked on the launch templates below.
        let in_asg = i["Tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["Key"] == "aws:autoscaling:groupName"));
        if !in_asg {
            assert_eq!(
                i["MetadataOptions"]["HttpTokens"],
                "required",
                "IMDSv2 on {}",
                role(i)
            );
            assert_eq!(i["MetadataOptions"]["HttpPutResponseHopLimit"], 1);
        }
    }

    // Two Auto Scaling groups, a network load balancer, both DNS records.
    let asgs = json(&w.aws_ok(&[
        "autoscaling",
        "describe-auto-scaling-groups",
        "--output",
        "json",
    ]));
    let asgs: Vec<&Value> = asgs["AutoScalingGroups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["AutoScalingGroupName"].as_str().unwrap().contains("e2e"))
        .collect();
    assert_eq!(asgs.len(), 2, "{asgs:?}");
    let lbs = json(&w.aws_ok(&["elbv2", "describe-load-balancers", "--output", "json"]));
    let lb = lbs["LoadBalancers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["VpcId"] == vpc.as_str())
        .expect("a load balancer in the VPC");
    assert_eq!(lb["Type"], "network");
    let records = json(&w.aws_ok(&[
        "route53",
        "list-resource-record-sets",
        "--hosted-zone-id",
        &zone,
        "--output",
        "json",
    ]));
    let names: Vec<&str> = records["ResourceRecordSets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    for n in [
        "kubernetes.kaws-e2e.example.com.",
        "bastion.kaws-e2e.example.com.",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }

    // Launch templates: the key pair and IMDSv2; user data without any private key.
    let lts = json(&w.aws_ok(&["ec2", "describe-launch-templates", "--output", "json"]));
    let mut templates = 0;
    for lt in lts["LaunchTemplates"].as_array().unwrap() {
        let id = lt["LaunchTemplateId"].as_str().unwrap();
        let v = json(&w.aws_ok(&[
            "ec2",
            "describe-launch-template-versions",
            "--launch-template-id",
            id,
            "--output",
            "json",
        ]));
        let data = &v["LaunchTemplateVersions"][0]["LaunchTemplateData"];
        if !lt["LaunchTemplateName"].as_str().unwrap().contains("e2e") {
            continue;
        }
        templates += 1;
        assert_eq!(data["KeyName"], "kaws-e2e");
        assert_eq!(data["MetadataOptions"]["HttpTokens"], "required");
        assert_eq!(data["MetadataOptions"]["HttpPutResponseHopLimit"], 1);
        // What servers boot with is judged by tests/boot.rs (Ignition,
        // systemd, shellcheck, etcd); here: the raw bytes EC2 serves are an
        // Ignition config, not gzip, within the module's limit.
        let ud = b64decode(data["UserData"].as_str().unwrap_or(""));
        assert!(ud.starts_with(b"{\"ignition\""), "plain Ignition JSON");
        assert!(ud.len() <= 12 * 1024, "{} bytes", ud.len());
    }
    assert_eq!(templates, 2);

    // Security groups: nothing open to the internet but 22 on the bastion
    // and 80/443; no all-ports rule.
    let sgs = json(&w.aws_ok(&[
        "ec2",
        "describe-security-groups",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "--output",
        "json",
    ]));
    let mut open = Vec::new();
    for sg in sgs["SecurityGroups"].as_array().unwrap() {
        let name = sg["GroupName"].as_str().unwrap().to_string();
        for p in sg["IpPermissions"].as_array().unwrap() {
            assert_ne!(p["IpProtocol"], "-1", "{name} has an all-ports rule: {p}");
            let world = p["IpRanges"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["CidrIp"] == "0.0.0.0/0");
            if world {
                open.push((
                    name.clone(),
                    p["FromPort"].as_i64().unwrap(),
                    p["ToPort"].as_i64().unwrap(),
                ));
            }
        }
    }
    for (name, from, to) in &open {
        assert_eq!(from, to, "{name}: a port range is open to the internet");
        assert!(
            [22, 80, 443].contains(from),
            "{name}: port {from} is open to the internet"
        );
        if *from == 22 {
            assert!(
                name.contains("bastion"),
                "only the bastion accepts SSH: {name}"
            );
        }
    }
    assert!(open.iter().any(|(_, p, _)| *p == 22));
    assert!(open.iter().any(|(_, p, _)| *p == 443));
    assert!(open.iter().any(|(_, p, _)| *p == 80));

    // IAM: each role decrypts only its own files, nobody the CA key.
    let roles = json(&w.aws_ok(&["iam", "list-roles", "--output", "json"]));
    let mut checked = 0;
    let mut read_back: Vec<(String, Value)> = Vec::new();
    let mut decrypts: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for r in roles["Roles"].as_array().unwrap() {
        let name = r["RoleName"].as_str().unwrap();
        if !name.contains("e2e") {
            continue;
        }
        let pols = json(&w.aws_ok(&[
            "iam",
            "list-role-policies",
            "--role-name",
            name,
            "--output",
            "json",
        ]));
        for p in pols["PolicyNames"].as_array().unwrap() {
            let doc = w.aws_ok(&[
                "iam",
                "get-role-policy",
                "--role-name",
                name,
                "--policy-name",
                p.as_str().unwrap(),
                "--output",
                "json",
            ]);
            assert!(
                !doc.contains("ca-key.pem"),
                "{name} may decrypt the CA key: {doc}"
            );
            let mut policy = json(&doc)["PolicyDocument"].clone();
            if let Some(text) = policy.as_str() {
                policy = json(text);
            }
            for st in policy["Statement"].as_array().unwrap() {
                if st["Action"].to_string().contains("kms:Decrypt") {
                    let files = &st["Condition"]["StringEquals"]["kms:EncryptionContext:kaws:file"];
                    let files: Vec<String> = match files {
                        Value::String(f) => vec![f.clone()],
                        v => v
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|f| f.as_str().unwrap().to_string())
                            .collect(),
                    };
                    decrypts
                        .entry(name.trim_start_matches("e2e-").to_string())
                        .or_default()
                        .extend(files);
                }
            }
            read_back.push((format!("{name}/{}", p.as_str().unwrap()), policy));
            if doc.contains("kms:Decrypt") {
                assert!(
                    doc.contains("kms:EncryptionContext:kaws:file"),
                    "{name}: {doc}"
                );
                assert!(
                    doc.contains("kms:EncryptionContext:kaws:cluster"),
                    "{name}: {doc}"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 3,
        "controller, worker and etcd policies allow kms:Decrypt with conditions"
    );
    // The docs' "who may decrypt which file" table is what IAM holds.
    let mut docs = docs_decrypt_table();
    assert_eq!(
        docs.remove("primary-administrators"),
        Some(["ca-key.pem".to_string()].into()),
        "no server decrypts the CA key"
    );
    assert_eq!(
        decrypts, docs,
        "IAM role policies against docs/concepts/cluster.md"
    );
    // Parliament, the IAM policy linter, finds nothing in the role
    // policies as IAM returns them.
    let findings = parliament(&read_back);
    assert_eq!(findings.len(), 3, "{findings:?}");
    for (name, f) in &findings {
        assert!(f.is_empty(), "{name}: {f:?}");
    }

    // A second plan finds nothing to do.
    let out = tf(
        &w,
        &[
            "cluster",
            "plan",
            "e2e",
            "--",
            "-detailed-exitcode",
            "-no-color",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "plan after apply must be clean");

    // Outputs, as text and as JSON.
    let out = tf(&w, &["cluster", "output", "e2e"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("https://kubernetes.kaws-e2e.example.com"),
        "{}",
        stdout(&out)
    );
    let out = tf(&w, &["cluster", "output", "e2e", "--output", "json"]);
    let v = json(&stdout(&out));
    assert_eq!(
        v["api_endpoint"]["value"],
        "https://kubernetes.kaws-e2e.example.com"
    );

    // Destroy leaves no kaws resource behind.
    let out = tf(
        &w,
        &[
            "cluster",
            "destroy",
            "e2e",
            "--",
            "-auto-approve",
            "-no-color",
        ],
    );
    assert!(out.status.success());
    let vpcs = json(&w.aws_ok(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=tag:Name,Values=e2e",
        "--output",
        "json",
    ]));
    assert_eq!(vpcs["Vpcs"].as_array().unwrap().len(), 0);
    let inst = json(&w.aws_ok(&[
        "ec2",
        "describe-instances",
        "--filters",
        "Name=tag:Name,Values=e2e",
        "Name=instance-state-name,Values=running",
        "--output",
        "json",
    ]));
    assert_eq!(inst["Reservations"].as_array().unwrap().len(), 0);
    let lbs = json(&w.aws_ok(&["elbv2", "describe-load-balancers", "--output", "json"]));
    assert!(!lbs["LoadBalancers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["VpcId"] == vpc.as_str()));
    let state =
        json(&std::fs::read_to_string(w.cluster_dir("e2e").join("terraform.tfstate")).unwrap());
    assert_eq!(
        state["resources"].as_array().map(|r| r.len()).unwrap_or(0),
        0
    );
}

#[test]
fn missing_terraform_is_one_clear_sentence() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("notf", &key, &[]).status.success());
    let out = w
        .kaws()
        .env("PATH", "/nonexistent")
        .args(["cluster", "plan", "notf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("terraform is not installed"),
        "{}",
        stderr(&out)
    );
}

/// `--state-bucket`: the state lives in S3 with S3-native locking, and the
/// lock is released after the apply.
#[test]
fn s3_backend_applies_and_releases_its_lock() {
    let w = World::new();
    w.aws_ok(&["s3api", "create-bucket", "--bucket", "kaws-state-e2e"]);
    w.applyable_cluster("s3", &["--state-bucket", "kaws-state-e2e"]);
    // A targeted apply: the backend and its lock are what this test is about.
    let out = tf(
        &w,
        &[
            "cluster",
            "apply",
            "s3",
            "--",
            "-auto-approve",
            "-no-color",
            "-target=module.kaws.aws_vpc.network",
        ],
    );
    assert!(out.status.success());
    assert!(
        !w.cluster_dir("s3").join("terraform.tfstate").exists(),
        "no local state"
    );
    let objects = w.aws_ok(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "kaws-state-e2e",
        "--query",
        "Contents[].Key",
        "--output",
        "text",
    ]);
    assert!(objects.contains("kaws/s3/terraform.tfstate"), "{objects}");
    assert!(
        !objects.contains(".tflock"),
        "the lock was released: {objects}"
    );
    let state = w.aws_ok(&[
        "s3",
        "cp",
        "s3://kaws-state-e2e/kaws/s3/terraform.tfstate",
        "-",
    ]);
    assert!(state.contains("aws_vpc"), "the state records the VPC");
    assert!(!state.contains("PRIVATE KEY"));
    let out = tf(
        &w,
        &[
            "cluster",
            "destroy",
            "s3",
            "--",
            "-auto-approve",
            "-no-color",
            "-target=module.kaws.aws_vpc.network",
        ],
    );
    assert!(out.status.success());
    let objects = w.aws_ok(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "kaws-state-e2e",
        "--query",
        "Contents[].Key",
        "--output",
        "text",
    ]);
    assert!(!objects.contains(".tflock"), "{objects}");
}

/// `terraform init` runs on first use and when the entry point changes, not before every command.
#[test]
fn init_runs_only_when_needed_and_terraform_source_is_honoured() {
    let w = World::new();
    let out = w
        .kaws_in(w.tmp.path())
        .args([
            "init",
            "other",
            "--terraform-source",
            "../../terraform/modules/kaws",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(w.tmp.path().join("other/kaws.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["terraform_source"], "../../terraform/modules/kaws");
    let out = w
        .kaws_in(w.tmp.path())
        .args(["init", "bad", "--terraform-source", "x\" { }"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));

    let key = w.kms_key();
    assert!(w
        .cluster_init("lazy", &key, &["--ami", "ami-12345678"])
        .status
        .success());
    let plan_with = |w: &World, extra: &[&str]| {
        let mut args = vec!["-v", "cluster", "plan", "lazy"];
        args.extend(extra);
        args.extend(["--", "-no-color", "-refresh=false", "-lock=false"]);
        w.kaws_tf().args(args).output().unwrap()
    };
    let plan = |w: &World| plan_with(w, &[]);
    let first = plan(&w);
    assert!(
        stderr(&first).contains("running terraform init"),
        "{}",
        stderr(&first)
    );
    let second = plan(&w);
    assert!(
        stderr(&second).contains("terraform init not needed"),
        "{}",
        stderr(&second)
    );
    // A changed entry point is refused: kaws runs Terraform only over the
    // main.tf it writes (tests/hostile.rs has the attacks).
    let main = w.cluster_dir("lazy").join("main.tf");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, format!("{text}\n# a comment\n")).unwrap();
    assert_eq!(plan(&w).status.code(), Some(3));
    std::fs::write(&main, &text).unwrap();
    // A changed module, reviewed and accepted, means init again.
    let versions = w.repo.join("terraform/modules/kaws/versions.tf");
    let text = std::fs::read_to_string(&versions).unwrap();
    std::fs::write(&versions, format!("{text}\n# a comment\n")).unwrap();
    let third = plan_with(&w, &["--accept-changes"]);
    assert!(
        stderr(&third).contains("running terraform init"),
        "{}",
        stderr(&third)
    );
}

/// Ctrl-C goes to the whole foreground process group: Terraform stops
/// cleanly, kaws waits for it and exits with Terraform's status, and no
/// state lock is left behind.
#[test]
fn ctrl_c_reaches_terraform_and_kaws_waits_for_it() {
    use std::os::unix::process::CommandExt;
    let w = World::new();
    w.applyable_cluster("int", &[]);
    // Initialise first, so the interrupt lands in the apply itself.
    assert!(tf(
        &w,
        &[
            "cluster",
            "plan",
            "int",
            "--",
            "-no-color",
            "-refresh=false"
        ]
    )
    .status
    .success());
    let child = w
        .kaws_tf()
        .args([
            "cluster",
            "apply",
            "int",
            "--",
            "-auto-approve",
            "-no-color",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    // Let the apply start creating resources (the NLB alone takes a minute).
    std::thread::sleep(std::time::Duration::from_secs(12));
    let pgid = child.id();
    let sent = std::process::Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    // kaws did not die of the signal: it waited and passed on Terraform's status.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        None,
        "kaws was killed by the signal: {text}"
    );
    assert!(
        text.contains("Interrupt received") || text.contains("interrupted"),
        "{text}"
    );
    let dir = w.cluster_dir("int");
    assert!(
        !dir.join(".terraform.tfstate.lock.info").exists(),
        "the state lock was released"
    );
    // Whatever Terraform had written of the state is whole JSON.
    if let Ok(text) = std::fs::read_to_string(dir.join("terraform.tfstate")) {
        let state: serde_json::Value = serde_json::from_str(&text).expect("the state is whole");
        assert!(state["resources"].is_array());
    }
    // The lock is free: the destroy goes through.
    let out = tf(
        &w,
        &[
            "cluster",
            "destroy",
            "int",
            "--",
            "-auto-approve",
            "-no-color",
        ],
    );
    assert!(out.status.success());
}

/// `--state-bucket` writes an S3 backend with `use_lockfile`, which needs
/// Terraform 1.10: the entry point says so, and kaws refuses an older
/// Terraform before `terraform init` with one clear sentence (exit 7).
#[test]
fn state_bucket_needs_terraform_1_10() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w
        .cluster_init("old", &key, &["--state-bucket", "some-bucket"])
        .status
        .success());
    assert!(w.cluster_init("local", &key, &[]).status.success());
    let main = |c: &str| std::fs::read_to_string(w.cluster_dir(c).join("main.tf")).unwrap();
    assert!(main("old").contains("required_version = \">= 1.10\""));
    assert!(main("local").contains("required_version = \">= 1.5\""));

    let fake = w.tmp.path().join("terraform-1.9");
    std::fs::write(
        &fake,
        "#!/bin/sh\nif [ \"$1\" = version ]; then echo '{\"terraform_version\":\"1.9.8\"}'; exit 0; fi\necho \"unexpected: $*\" >&2; exit 99\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &fake)
        .args(["cluster", "plan", "old"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Terraform 1.9.8") && stderr(&out).contains("1.10"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("unexpected"), "init never ran");
    // Local state has no such need: the old Terraform is run.
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &fake)
        .args(["cluster", "plan", "local"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("unexpected: init"),
        "{}",
        stderr(&out)
    );
}

/// Names AWS limits: a 63-character cluster name (the longest kaws accepts)
/// plans with IAM names within 64 characters and load balancer names within
/// 32 that do not end in "-"; a Kubernetes version the module has no pins
/// for is refused at plan time, naming the pinned ones.
#[test]
fn long_cluster_names_plan_and_unpinned_versions_are_refused() {
    let w = World::new();
    let key = w.kms_key();
    let long = format!("l{}", "o".repeat(52)) + "ng-cluster";
    assert_eq!(long.len(), 63);
    let out = w.cluster_init(&long, &key, &["--ami", "ami-12345678"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tf(
        &w,
        &[
            "cluster",
            "plan",
            &long,
            "--",
            "-no-color",
            "-refresh=false",
            "-lock=false",
            "-out=plan.bin",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut show = std::process::Command::new("terraform");
    w.env(&mut show);
    let show = show
        .env("TF_CLI_CONFIG_FILE", w.tf_config())
        .current_dir(w.cluster_dir(&long))
        .args(["show", "-json", "plan.bin"])
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
    let plan = json(&stdout(&show));
    let mut seen = 0;
    for rc in plan["resource_changes"].as_array().unwrap() {
        let name = rc["change"]["after"]["name"].as_str().unwrap_or_default();
        let limit = match rc["type"].as_str().unwrap() {
            "aws_iam_role" | "aws_iam_instance_profile" => 64,
            "aws_lb" | "aws_lb_target_group" => 32,
            _ => continue,
        };
        seen += 1;
        assert!(
            !name.is_empty() && name.len() <= limit && !name.ends_with('-'),
            "{}: {name:?}",
            rc["address"]
        );
    }
    assert_eq!(
        seen,
        3 + 3 + 2,
        "three roles, three profiles, the NLB and its group"
    );

    let out = w.cluster_init(
        "old",
        &key,
        &["--ami", "ami-12345678", "--kubernetes-version", "v1.35.3"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tf(
        &w,
        &[
            "cluster",
            "plan",
            "old",
            "--",
            "-no-color",
            "-refresh=false",
            "-lock=false",
        ],
    );
    assert!(!out.status.success());
    let err = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        err.contains("kubernetes_version v1.35.3 has no pinned checksums")
            && err.contains("v1.35.4"),
        "{err}"
    );
}
